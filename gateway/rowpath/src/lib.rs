//! The gateway's row path for the usual result body, compiled.
//!
//! `parse` reads a request body; `Body::results` turns its lines into the bulk lines of
//! their documents: the bytes the gateway's Python path (`documents.DocumentBuilder`)
//! writes for the same body, byte for byte. It does so only for the usual body: every
//! line an object with the fields osquery sends, each of its exact JSON type, named for
//! the sending host, with flat `columns` and `decorations` of strings, integers,
//! booleans and nulls. For anything else it answers `None` and the gateway runs its
//! Python path from the start, which is where every error, and every rule about what is
//! accepted, is defined: so this code has no error messages, and declining is always
//! safe. Each line is checked here at least as strictly as there (`flock_gateway.
//! validation`: `parse_json`'s structure limits and `validate_result_item`'s quick check).
//!
//! The index, `@timestamp` and source head of a row come from the Python side, one call
//! of `stamp` per distinct `unixTime` of the body, so time and retention rules live in
//! one place.

mod json;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sha2::{Digest, Sha256};

use json::{Object, Value, HEX};

// validation.MAX_KEYS_PER_OBJECT and MAX_KEY_LEN (characters there; bytes here, never
// fewer, so this declines a superset)
const MAX_KEYS: usize = 1000;
const MAX_KEY_LEN: usize = 256;
// validation._USUAL_LINE: the fields every usual line has, each of one type (usual())
const REQUIRED: [&str; 9] = [
    "name",
    "hostIdentifier",
    "calendarTime",
    "action",
    "epoch",
    "counter",
    "unixTime",
    "numerics",
    "columns",
];
// the kind of document a result line is (documents.DocumentBuilder.results)
const KIND: &str = "results";

// a row time's bulk action head and source head; None: older than the retention
type Heads = Option<(Vec<u8>, Vec<u8>)>;
// what `Body::results` answers: bulk lines, documents, expired rows, query names
type Rows<'py> = (Bound<'py, PyBytes>, usize, usize, Vec<String>);

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
/// osquery's `{"node_key": str, "log_type": str, "data": [objects]}` (`wrapped` true);
/// `None` for any other body (the Python path answers it).
#[pyfunction]
fn parse(body: &Bound<'_, PyBytes>, wrapped: bool) -> Option<Body> {
    let data = body.as_bytes();
    // SAFETY: the parsed tree borrows unescaped strings from the body's buffer instead of
    // copying them. A bytes object is immutable and its buffer never moves; the Body keeps
    // a reference to it (`_source`) and drops the tree before that reference.
    let data: &'static [u8] = unsafe { std::slice::from_raw_parts(data.as_ptr(), data.len()) };
    let value: Value<'static> = serde_json::from_slice(data).ok()?;
    let (lines, node_key, log_type) = match value {
        Value::Array(lines) if !wrapped => (lines, None, None),
        Value::Object(mut top) if wrapped && top.len() == 3 => {
            let (Some(Value::String(key)), Some(Value::String(kind)), Some(Value::Array(lines))) =
                (top.take("node_key"), top.take("log_type"), top.take("data"))
            else {
                return None;
            };
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

    /// `(bulk lines, documents, expired rows, the lines' distinct query names)` for
    /// result lines sent by `host` and stored for `username`, or `None` when a line is
    /// not the usual one or the body exceeds its budget (`max_docs` documents,
    /// `max_bytes` bytes of canonical rows). `stamp(unixTime)` answers the row time's
    /// `(action head, source head)`, or `None` for a row older than the retention.
    fn results<'py>(
        &self,
        py: Python<'py>,
        host: &str,
        username: &str,
        stamp: &Bound<'py, PyAny>,
        max_docs: usize,
        max_bytes: usize,
    ) -> PyResult<Option<Rows<'py>>> {
        let mut rows: Vec<Line> = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            match usual(line, host) {
                Some(row) => rows.push(row),
                None => return Ok(None),
            }
        }
        let mut base = Sha256::new();
        base.update(username.as_bytes());
        base.update(b"\0");
        base.update(KIND.as_bytes());
        base.update(b"\0");
        let mut stamps: HashMap<i64, Heads> = HashMap::new();
        // by the digest of the row (after the id's prefix): a SHA-256 collision aside, one
        // per distinct canonical row, without keeping or rehashing the row itself
        let mut seen: HashMap<[u8; 32], i64> = HashMap::new();
        let mut names: HashSet<&str> = HashSet::new();
        let mut out: Vec<u8> = Vec::with_capacity(self.lines.len() * 768);
        let mut canon: Vec<u8> = Vec::with_capacity(1024);
        let (mut docs, mut bytes, mut expired) = (0usize, 0usize, 0usize);
        for Line { row, name, time } in rows {
            names.insert(name);
            let heads = match stamps.entry(time) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(stamp_heads(stamp, time)?),
            };
            canon.clear();
            json::write_object(&mut canon, row);
            docs += 1;
            bytes += canon.len();
            if docs > max_docs || bytes > max_bytes {
                return Ok(None);
            }
            let Some((action, head)) = heads else {
                expired += 1;
                continue;
            };
            let mut digest = base.clone();
            digest.update(&canon);
            let count = seen.entry(digest.clone().finalize().into()).or_insert(0);
            // the occurrence of this row among identical ones: NUL, its digits, NUL
            let mut tail = Vec::with_capacity(24);
            tail.push(b'\0');
            json::write_int(&mut tail, *count);
            tail.push(b'\0');
            *count += 1;
            digest.update(&tail);
            out.extend_from_slice(action);
            out.push(b'"');
            push_hex40(&mut out, &digest.finalize());
            out.extend_from_slice(b"\"}}\n");
            out.extend_from_slice(head);
            out.extend_from_slice(&canon);
            out.extend_from_slice(b"}\n");
        }
        let names = names.into_iter().map(str::to_owned).collect();
        Ok(Some((PyBytes::new(py, &out), docs - expired, expired, names)))
    }
}

fn stamp_heads(stamp: &Bound<'_, PyAny>, time: i64) -> PyResult<Heads> {
    stamp.call1((time,))?.extract::<Heads>()
}

/// A field name the Python path takes without a word (validation._check_key): not
/// empty, not starting with white space, no leading, trailing or doubled dot, short.
fn key_ok(key: &str) -> bool {
    let Some(first) = key.chars().next() else { return false };
    // Python's str.isspace() also counts U+001C..U+001F, which Rust's does not
    !(first.is_whitespace()
        || ('\u{1c}'..='\u{1f}').contains(&first)
        || key.len() > MAX_KEY_LEN
        || key.starts_with('.')
        || key.ends_with('.')
        || key.contains(".."))
}

/// A string, a 64-bit signed integer, a boolean or null: nothing to check, and written
/// as orjson writes it (floats, whose text differs between writers, are declined).
fn scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Int(_) | Value::Bool(_) | Value::Null)
}

fn flat(value: &Value) -> bool {
    matches!(value, Value::Object(map)
        if map.len() <= MAX_KEYS && map.iter().all(|(key, cell)| key_ok(key) && scalar(cell)))
}

/// A usual result line: the row, its query name and its time.
struct Line<'a> {
    row: &'a Object<'a>,
    name: &'a str,
    time: i64,
}

/// validate_result_item's usual line, sent by `host`: one pass over its fields.
fn usual<'a>(line: &'a Value, host: &str) -> Option<Line<'a>> {
    let Value::Object(row) = line else { return None };
    if row.len() > MAX_KEYS {
        return None;
    }
    let (mut name, mut time, mut required) = (None, None, 0);
    for (key, value) in row.iter() {
        match (key, value) {
            ("name", Value::String(text)) => name = Some(text.as_ref()),
            ("unixTime", Value::Int(number)) => time = Some(*number),
            ("hostIdentifier", Value::String(text)) if text == host => {}
            ("calendarTime" | "action", Value::String(_))
            | ("epoch" | "counter", Value::Int(_))
            | ("numerics", Value::Bool(_)) => {}
            ("columns", object) if flat(object) => {}
            ("decorations", object) if flat(object) => continue,
            (key, value)
                if !REQUIRED.contains(&key)
                    && !matches!(key, "decorations" | "host_uuid" | "snapshot")
                    && key_ok(key)
                    && scalar(value) =>
            {
                continue
            }
            _ => return None,
        }
        required += 1; // one of REQUIRED (an object has each key once)
    }
    if required != REQUIRED.len() {
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
    Ok(())
}
