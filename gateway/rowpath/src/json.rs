//! A JSON tree that borrows its strings from the body (only strings with escapes are
//! copied), keeps objects as Python's dicts read them (the last of duplicate keys wins),
//! in the canonical order (sorted by key), and writes them as orjson writes them.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    // a float, or an integer beyond 64 bits signed: never taken by the row path
    OtherNumber,
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Object<'a>),
}

/// An object's members sorted by key (UTF-8 byte order, which is code point order:
/// Python's), one per key.
pub struct Object<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Object<'a> {
    fn new(mut members: Vec<(Cow<'a, str>, Value<'a>)>) -> Self {
        // stable: of equal keys, the last read stays last, and is the one kept
        members.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(Cow<'a, str>, Value<'a>)> = Vec::with_capacity(members.len());
        for member in members {
            match kept.last_mut() {
                Some(last) if last.0 == member.0 => *last = member,
                _ => kept.push(member),
            }
        }
        Object(kept)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn take(&mut self, key: &str) -> Option<Value<'a>> {
        let at = self.0.binary_search_by(|member| member.0.as_ref().cmp(key)).ok()?;
        Some(self.0.remove(at).1)
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        let at = self.0.binary_search_by(|member| member.0.as_ref().cmp(key)).ok()?;
        Some(&self.0[at].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.0.iter().map(|(key, value)| (key.as_ref(), value))
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    // a key is read as a string value is: borrowed unless it has escapes
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(text)))
    }
}

/// The limits a tree is built within: beyond them the body is declined as soon as it is
/// read that far, before the rest of it is built.
pub struct Limits {
    pub max_depth: usize,
    pub max_keys: usize,
    // a line with fewer members lacks a required field
    pub min_line_members: usize,
}

/// Where a value sits in a body the row path can take. Anything else (an array inside a
/// line, a scalar where a line belongs, another member of osquery's wrapper) is declined
/// where it is met, so the tree never holds what `plain` would decline anyway.
#[derive(Clone, Copy, PartialEq)]
pub enum Slot {
    // osquery's {"node_key": str, "log_type": str, "data": lines}
    Wrapper,
    // the array of result lines
    Lines,
    // a result line: an object of scalars and flat objects
    Line,
    // a line's member: a scalar or a flat object
    Member,
    // a flat object's member, or the wrapper's node key or log type
    Scalar,
}

/// Builds the value at `slot`, `depth` containers down, within `limits`.
#[derive(Clone, Copy)]
pub struct Shaped<'l> {
    pub limits: &'l Limits,
    pub slot: Slot,
    pub depth: usize,
}

impl Shaped<'_> {
    fn below(self, slot: Slot) -> Self {
        Shaped { limits: self.limits, slot, depth: self.depth + 1 }
    }

    fn scalar<'de, E: serde::de::Error>(self, value: Value<'de>) -> Result<Value<'de>, E> {
        if matches!(self.slot, Slot::Member | Slot::Scalar) {
            Ok(value)
        } else {
            Err(declined())
        }
    }

    fn container<E: serde::de::Error>(self, slots: &[Slot]) -> Result<(), E> {
        if self.depth < self.limits.max_depth && slots.contains(&self.slot) {
            Ok(())
        } else {
            Err(declined())
        }
    }
}

fn declined<E: serde::de::Error>() -> E {
    E::custom("not a body the row path takes")
}

impl<'de> DeserializeSeed<'de> for Shaped<'_> {
    type Value = Value<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shaped<'_> {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value<'de>, E> {
        self.scalar(Value::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<Value<'de>, E> {
        self.scalar(Value::Bool(value))
    }

    fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Value<'de>, E> {
        self.scalar(Value::Int(value))
    }

    fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Value<'de>, E> {
        self.scalar(i64::try_from(value).map_or(Value::OtherNumber, Value::Int))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Value<'de>, E> {
        self.scalar(Value::OtherNumber)
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Value<'de>, E> {
        self.scalar(Value::String(Cow::Borrowed(text)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Value<'de>, E> {
        self.scalar(Value::String(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Value<'de>, E> {
        self.scalar(Value::String(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        self.container(&[Slot::Lines])?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.below(Slot::Line))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        self.container(&[Slot::Wrapper, Slot::Line, Slot::Member])?;
        let mut members = Vec::new();
        while let Some(Key(key)) = map.next_key::<Key>()? {
            let slot = match (self.slot, key.as_ref()) {
                (Slot::Wrapper, "data") => Slot::Lines,
                (Slot::Wrapper, "node_key" | "log_type") | (Slot::Member, _) => Slot::Scalar,
                (Slot::Line, _) => Slot::Member,
                _ => return Err(declined()),
            };
            // counted as read: duplicates, which Python's dict folds, too
            if members.len() == self.limits.max_keys {
                return Err(declined());
            }
            let value = map.next_value_seed(self.below(slot))?;
            members.push((key, value));
        }
        if self.slot == Slot::Line && members.len() < self.limits.min_line_members {
            return Err(declined());
        }
        Ok(Value::Object(Object::new(members)))
    }
}

/// orjson's compact text with sorted keys (what documents.canonical_bytes writes).
pub fn write_object(out: &mut Vec<u8>, object: &Object) {
    out.push(b'{');
    for (i, (key, value)) in object.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(number) => write_int(out, *number),
        Value::String(text) => write_str(out, text),
        Value::Object(object) => write_object(out, object),
        // the row path takes neither (plain() in lib.rs)
        Value::OtherNumber | Value::Array(_) => unreachable!("declined before writing"),
    }
}

/// An integer in decimal, as every JSON writer writes it.
pub fn write_int(out: &mut Vec<u8>, number: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if number < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

pub const HEX: &[u8; 16] = b"0123456789abcdef";

// per byte: 0 as is, b'u' as \u00XX, else the letter after the backslash
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// A JSON string as orjson writes it: `"` and `\` escaped, control characters as `\b`,
/// `\t`, `\n`, `\f`, `\r` or `\u00xx`, everything else (DEL and non-ASCII too) as is.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(byte)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(escape);
        if escape == b'u' {
            out.extend_from_slice(b"00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
