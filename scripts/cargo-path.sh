# Sourced by the scripts that build or lint the gateway's compiled row path
# (gateway/rowpath): rustup installs cargo in ~/.cargo/bin, which a non-login shell
# (CI, cron, sudo) may not have on its PATH.
if ! command -v cargo >/dev/null 2>&1 && [[ -x ${CARGO_HOME:-$HOME/.cargo}/bin/cargo ]]; then
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
