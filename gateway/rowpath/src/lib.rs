//! The compiled accelerator of the gateway's rows (`flock_gateway/accelerator.py`).
//!
//! `parse` reads a request body; `Body::results` turns its lines into the bulk lines of
//! their documents: the bytes the gateway's Python path (`documents.DocumentBuilder`)
//! writes for the same body, byte for byte. It does so only for a plain body: every line
//! an object whose fields are those `Rules` names, each of its exact JSON type, named for
//! the sending host, other fields and `object` fields' members strings, integers,
//! booleans and nulls. For anything else it answers `None` and the gateway runs its
//! Python path from the start, which is where every error, and every rule about what is
//! accepted, is defined: so this code has no error messages, and declining is always
//! safe. What it checks (field names, types, limits) is given by the Python side in
//! `Rules`; what the documents are (index, time, the parts of their lines, the ids'
//! prefix) too, so no rule is written here twice.

mod json;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

use serde::de::DeserializeSeed;

use json::{Limits, Object, Shaped, Slot, Value, HEX};

// a row time's line parts (before the id, before the row); None: older than the retention
type Parts = Option<(Vec<u8>, Vec<u8>)>;
// what `Body::results` answers: bulk lines, documents, expired rows, query names, and the
// current-state bulk lines, their documents and the lines without a time of their own
type Written<'py> =
    (Bound<'py, PyBytes>, usize, usize, Vec<String>, Bound<'py, PyBytes>, usize, usize);
// a line time's current-state line parts: the bits of a version below the time (the run),
// and what follows a document's version up to the client's line, for an added and for a
// removed line; None: not a time of the line's own
type StateParts = Option<(u32, Vec<u8>, Vec<u8>)>;
// what the current state needs from Python (state.StateLines.compiled_parts): the ids'
// prefix, the action line up to the id, and the parts of a line time
type StateArgs<'py> = (Vec<u8>, Vec<u8>, Bound<'py, PyAny>);
// between a state document's id and its version (state._middle)
const STATE_VERSION: &[u8] = b"\",\"version\":";
// how a document's bulk lines end (documents.LINES_END)
const LINES_END: &[u8] = b"}\n";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    String,
    Int,
    Bool,
    // an object of `key_ok` names and scalar values
    Object,
    // a string equal to the sending host
    Host,
    // a line with this field is left to the Python path
    Decline,
}

/// What a plain line is, as the Python side defines it (`accelerator.RULES`).
#[pyclass(frozen, module = "flock_rowpath")]
pub struct Rules {
    // each field's name, kind, and whether every plain line has it; a dozen fields, so a
    // scan (which compares lengths first) costs less per key than hashing it
    fields: Vec<(Box<str>, Kind, bool)>,
    // how many fields every plain line has
    required: usize,
    query_field: String,
    time_field: String,
    max_keys: usize,
    max_key_len: usize,
    // containers nested this deep are never taken (validation.MAX_DEPTH)
    max_depth: usize,
}

#[pymethods]
impl Rules {
    /// `fields`: name -> "string" | "int" | "bool" | "object" | "host" | "decline"; all
    /// but `optional` ones and "decline" ones are required. `query_field` must be a
    /// "string" field, `time_field` an "int" one. `max_depth`: containers this many
    /// levels down are declined while the body is read.
    #[new]
    #[pyo3(signature = (*, fields, optional, query_field, time_field, max_keys, max_key_len, max_depth))]
    fn new(
        fields: HashMap<String, String>,
        optional: Vec<String>,
        query_field: String,
        time_field: String,
        max_keys: usize,
        max_key_len: usize,
        max_depth: usize,
    ) -> PyResult<Self> {
        let mut kinds = Vec::with_capacity(fields.len());
        let mut required = 0;
        for (name, kind) in fields {
            let kind = match kind.as_str() {
                "string" => Kind::String,
                "int" => Kind::Int,
                "bool" => Kind::Bool,
                "object" => Kind::Object,
                "host" => Kind::Host,
                "decline" => Kind::Decline,
                other => return Err(PyValueError::new_err(format!("unknown kind {other:?}"))),
            };
            let needed = kind != Kind::Decline && !optional.contains(&name);
            required += usize::from(needed);
            kinds.push((name.into_boxed_str(), kind, needed));
        }
        let rules = Rules {
            fields: kinds,
            required,
            query_field,
            time_field,
            max_keys,
            max_key_len,
            max_depth,
        };
        let required_as = |name: &str, kind: Kind| rules.field(name) == Some((kind, true));
        if !required_as(&rules.query_field, Kind::String)
            || !required_as(&rules.time_field, Kind::Int)
        {
            return Err(PyValueError::new_err("query_field and time_field must be required"));
        }
        Ok(rules)
    }
}

impl Rules {
    /// The kind of the field named `key`, and whether every plain line has it.
    fn field(&self, key: &str) -> Option<(Kind, bool)> {
        self.fields
            .iter()
            .find(|(name, ..)| name.as_ref() == key)
            .map(|&(_, kind, needed)| (kind, needed))
    }
}

/// A parsed body: its lines, and for osquery's wrapper its node key and log type.
#[pyclass(frozen, module = "flock_rowpath")]
pub struct Body {
    // Borrows the strings of `_source` (see `parse`): declared first, so dropped first.
    lines: Vec<Value<'static>>,
    #[pyo3(get)]
    node_key: Option<String>,
    #[pyo3(get)]
    log_type: Option<String>,
    _source: Py<PyBytes>,
}

/// The body's lines: `body` is a JSON array of objects (`wrapped` false, /submit) or
/// osquery's `{"node_key": str, "log_type": "result", "data": [objects]}` (`wrapped`
/// true); `None` for any other body (the Python path answers it, parsing it once). A body
/// that cannot be plain by `rules` is declined where it is read, before the rest of its
/// tree is built.
#[pyfunction]
fn parse(body: &Bound<'_, PyBytes>, wrapped: bool, rules: &Rules) -> Option<Body> {
    let data = body.as_bytes();
    // SAFETY: the parsed tree borrows unescaped strings from the body's buffer instead of
    // copying them. A bytes object is immutable and its buffer never moves; the Body keeps
    // a reference to it (`_source`) and drops the tree before that reference.
    let data: &'static [u8] = unsafe { std::slice::from_raw_parts(data.as_ptr(), data.len()) };
    let limits = Limits {
        max_depth: rules.max_depth,
        max_keys: rules.max_keys,
        min_line_members: rules.required,
    };
    let top = Shaped {
        limits: &limits,
        slot: if wrapped { Slot::Wrapper } else { Slot::Lines },
        depth: 0,
    };
    let mut reader = serde_json::Deserializer::from_slice(data);
    let value: Value<'static> = top.deserialize(&mut reader).ok()?;
    reader.end().ok()?;
    let (lines, node_key, log_type) = match value {
        Value::Array(lines) if !wrapped => (lines, None, None),
        Value::Object(mut top) if wrapped && top.len() == 3 => {
            let (Some(Value::String(key)), Some(Value::String(kind)), Some(Value::Array(lines))) =
                (top.take("node_key"), top.take("log_type"), top.take("data"))
            else {
                return None;
            };
            if kind != "result" {
                return None;
            }
            (lines, Some(key.into_owned()), Some(kind.into_owned()))
        }
        _ => return None,
    };
    if lines.is_empty() {
        return None;
    }
    Some(Body { lines, node_key, log_type, _source: body.clone().unbind() })
}

#[pymethods]
impl Body {
    fn __len__(&self) -> usize {
        self.lines.len()
    }

    /// `(bulk lines, documents, expired rows, the lines' distinct query names, state bulk
    /// lines, state documents, lines without a time)` for result lines sent by `host`,
    /// when every line is plain by `rules`; `None` when one is not or the body exceeds its
    /// budget (`max_docs` documents, `max_bytes` bytes of canonical rows). A document's id
    /// is the first 40 hex digits of its link in a chain over the request's rows: the
    /// SHA-256 of the previous link (32 zero bytes before the first row) and the SHA-256
    /// of `id_prefix` and the canonical row (documents.doc_ids). `row_time(unixTime)`
    /// answers the row time's line parts `(before the id, before the row)`, or `None` for
    /// a row older than the retention.
    ///
    /// With `state` (`(ids' prefix, action line up to the id, parts(unixTime))`), each
    /// stored `added` or `removed` line also gets its current-state document
    /// (state.StateLines.differential): id the first 40 hex digits of the SHA-256 of the
    /// prefix, the query name, NUL and the canonical columns; version the time shifted
    /// left by the bits `parts` answers, with the line's counter below (0 when negative
    /// or absent, capped to those bits); `parts` also answers what follows the version for
    /// an added and a removed line, or `None` for a line without a time of its own.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (rules, host, id_prefix, row_time, max_docs, max_bytes, state=None))]
    fn results<'py>(
        &self,
        py: Python<'py>,
        rules: &Rules,
        host: &str,
        id_prefix: &[u8],
        row_time: &Bound<'py, PyAny>,
        max_docs: usize,
        max_bytes: usize,
        state: Option<StateArgs<'py>>,
    ) -> PyResult<Option<Written<'py>>> {
        // over the budget already: nothing below (the bulk is sized by the line count) is
        // reserved for it
        if self.lines.len() > max_docs {
            return Ok(None);
        }
        let mut rows: Vec<Line> = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            match plain(rules, line, host) {
                Some(row) => rows.push(row),
                None => return Ok(None),
            }
        }
        let mut base = Sha256::new();
        base.update(id_prefix);
        let mut times: HashMap<i64, Parts> = HashMap::new();
        // the id chain's last link: a row's id covers every row before it
        let mut link = [0u8; 32];
        let mut names: HashSet<&str> = HashSet::new();
        // sized once for the body's rows and each document's action and gateway fields
        // (a few hundred bytes), rather than grown by copying as it fills
        let source = self._source.bind(py).as_bytes().len();
        let mut out: Vec<u8> = Vec::with_capacity(source.min(max_bytes) + rows.len() * 256);
        let mut canon: Vec<u8> = Vec::with_capacity(1024);
        let (mut docs, mut bytes, mut expired) = (0usize, 0usize, 0usize);
        let state_base = state.as_ref().map(|(prefix, _, _)| {
            let mut base = Sha256::new();
            base.update(prefix);
            base
        });
        let mut state_out: Vec<u8> =
            Vec::with_capacity(if state.is_some() { out.capacity() } else { 0 });
        let mut state_times: HashMap<i64, StateParts> = HashMap::new();
        let mut columns_canon: Vec<u8> = Vec::with_capacity(512);
        let (mut state_docs, mut unordered) = (0usize, 0usize);
        for Line { row, name, time } in rows {
            names.insert(name);
            let parts = match times.entry(time) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(row_time.call1((time,))?.extract::<Parts>()?),
            };
            canon.clear();
            json::write_object(&mut canon, row);
            docs += 1;
            bytes += canon.len();
            if docs > max_docs || bytes > max_bytes {
                return Ok(None);
            }
            let mut row_digest = base.clone();
            row_digest.update(&canon);
            let mut next = Sha256::new();
            next.update(link);
            next.update(row_digest.finalize());
            link = next.finalize().into();
            // an expired row is a link too (documents.DocumentBuilder._make)
            let Some((before_id, before_row)) = parts else {
                expired += 1;
                continue;
            };
            out.extend_from_slice(before_id);
            push_hex40(&mut out, &link);
            out.extend_from_slice(before_row);
            out.extend_from_slice(&canon);
            out.extend_from_slice(LINES_END);
            let (Some((_, head, parts_of)), Some(base)) = (&state, &state_base) else {
                continue;
            };
            let present = match row.get("action") {
                Some(Value::String(action)) if action == "added" => true,
                Some(Value::String(action)) if action == "removed" => false,
                _ => continue,
            };
            let Some(Value::Object(columns)) = row.get("columns") else { continue };
            let parts = match state_times.entry(time) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(parts_of.call1((time,))?.extract::<StateParts>()?),
            };
            let Some((bits, added, removed)) = parts else {
                unordered += 1;
                continue;
            };
            let max_run = (1i64 << *bits) - 1;
            let run = match row.get("counter") {
                Some(Value::Int(number)) if *number > 0 => (*number).min(max_run),
                _ => 0,
            };
            columns_canon.clear();
            json::write_object(&mut columns_canon, columns);
            let mut digest = base.clone();
            digest.update(name.as_bytes());
            digest.update(b"\0");
            digest.update(&columns_canon);
            state_out.extend_from_slice(head);
            push_hex40(&mut state_out, &digest.finalize());
            state_out.extend_from_slice(STATE_VERSION);
            json::write_int(&mut state_out, (time << *bits) | run);
            state_out.extend_from_slice(if present { added } else { removed });
            state_out.extend_from_slice(&canon);
            state_out.extend_from_slice(LINES_END);
            state_docs += 1;
        }
        let names = names.into_iter().map(str::to_owned).collect();
        Ok(Some((
            PyBytes::new(py, &out),
            docs - expired,
            expired,
            names,
            PyBytes::new(py, &state_out),
            state_docs,
            unordered,
        )))
    }
}

/// A field name the Python path takes without a word (validation._check_key): not
/// empty, not starting with white space, no leading, trailing or doubled dot, short.
fn key_ok(key: &str, max_key_len: usize) -> bool {
    let Some(first) = key.chars().next() else { return false };
    // Python's str.isspace() also counts U+001C..U+001F, which Rust's does not
    !(first.is_whitespace()
        || ('\u{1c}'..='\u{1f}').contains(&first)
        || key.len() > max_key_len
        || key.starts_with('.')
        || key.ends_with('.')
        || key.contains(".."))
}

/// A string, a 64-bit signed integer, a boolean or null: nothing to check, and written
/// as orjson writes it (floats, whose text differs between writers, are declined).
fn scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Int(_) | Value::Bool(_) | Value::Null)
}

fn flat(rules: &Rules, value: &Value) -> bool {
    matches!(value, Value::Object(map)
        if map.len() <= rules.max_keys
            && map.iter().all(|(key, cell)| key_ok(key, rules.max_key_len) && scalar(cell)))
}

/// A plain result line: the row, its query name and its time.
struct Line<'a> {
    row: &'a Object<'a>,
    name: &'a str,
    time: i64,
}

/// A plain line by `rules`, sent by `host`: one pass over its fields.
fn plain<'a>(rules: &Rules, line: &'a Value, host: &str) -> Option<Line<'a>> {
    let Value::Object(row) = line else { return None };
    if row.len() > rules.max_keys {
        return None;
    }
    let (mut name, mut time, mut required) = (None, None, 0);
    for (key, value) in row.iter() {
        let Some((kind, needed)) = rules.field(key) else {
            // a field the rules do not name: any scalar under a name the Python path takes
            if key_ok(key, rules.max_key_len) && scalar(value) {
                continue;
            }
            return None;
        };
        let ok = match (kind, value) {
            (Kind::String, Value::String(text)) => {
                if key == rules.query_field {
                    name = Some(text.as_ref());
                }
                true
            }
            (Kind::Int, Value::Int(number)) => {
                if key == rules.time_field {
                    time = Some(*number);
                }
                true
            }
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Object, object) => flat(rules, object),
            (Kind::Host, Value::String(text)) => text == host,
            _ => false,
        };
        if !ok {
            return None;
        }
        required += usize::from(needed); // each key once: an object has each key once
    }
    if required != rules.required {
        return None;
    }
    Some(Line { row, name: name?, time: time? })
}

/// The first 40 hex digits of a digest (documents._id).
fn push_hex40(out: &mut Vec<u8>, digest: &[u8]) {
    for &byte in &digest[..20] {
        out.push(HEX[usize::from(byte >> 4)]);
        out.push(HEX[usize::from(byte & 0xf)]);
    }
}

#[pymodule]
fn flock_rowpath(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(parse, module)?)?;
    module.add_class::<Body>()?;
    module.add_class::<Rules>()?;
    Ok(())
}
