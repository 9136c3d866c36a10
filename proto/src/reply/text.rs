//! Serialising through `Display`: the JSON `-o json` prints uses the same words as the text.
use std::fmt;

use serde::Serializer;

/// Serialise through `Display` (service keys as `TCP 198.18.0.100:80`, as in the text).
pub fn as_text<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

pub(super) fn opt_as_text<T: fmt::Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
