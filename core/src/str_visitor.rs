//! Deserializing a type that is parsed from one string ([`crate::SavePath`],
//! [`crate::ContentHash`]) straight from the input's text, without first copying it into
//! an owned `String`: a 10,000-entry manifest holds some 30,000 of them.

use serde::Deserializer;
use serde::de::{Error, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// Deserialize a string and `parse` it; a parse error becomes the deserializer's error.
pub fn deserialize_parsed<'de, D, T, E>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    E: fmt::Display,
{
    d.deserialize_str(Parsed { expecting, parse, out: PhantomData })
}

struct Parsed<T, E> {
    expecting: &'static str,
    parse: fn(&str) -> Result<T, E>,
    out: PhantomData<T>,
}

impl<T, E: fmt::Display> Visitor<'_> for Parsed<T, E> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<X: Error>(self, s: &str) -> Result<T, X> {
        (self.parse)(s).map_err(X::custom)
    }
}
