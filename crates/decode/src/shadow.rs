//! Reads JSON into shadow structs by hand, so a record costs no allocation beyond
//! the strings that carry escapes.
//!
//! A derived `Deserialize` would copy every optional string and could not say which
//! keys it skipped; here keys are matched in place, string values borrow from the
//! input, a key outside the contract is reported with its dotted path (via
//! [`Unknowns`]) and skipped, and a key given twice is an error, so two parsers can
//! never read one record two ways.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::unknown::field_name;

/// Where unknown fields go: the path of the object being read, and the report.
pub(crate) struct Unknowns<'r> {
    path: Vec<&'static str>,
    report: &'r mut dyn FnMut(String),
}

impl<'r> Unknowns<'r> {
    pub(crate) fn new(report: &'r mut dyn FnMut(String)) -> Unknowns<'r> {
        Unknowns {
            path: Vec::new(),
            report,
        }
    }

    fn report(&mut self, key: &str) {
        (self.report)(field_name(&self.path, key));
    }

    /// Runs `read` with `field` appended to the path.
    pub(crate) fn within<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> T,
    ) -> T {
        self.path.push(field);
        let value = read(self);
        self.path.pop();
        value
    }
}

/// A JSON object of the contract: every field optional, read one key at a time.
pub(crate) trait Shadow<'de>: Default {
    /// Reads the value of `key` into its field when the contract knows the key
    /// (`Ok(false)` when not). `seen` marks the fields read so far.
    fn read_field<A: MapAccess<'de>>(
        &mut self,
        key: &str,
        seen: &mut u32,
        map: &mut A,
        unknowns: &mut Unknowns<'_>,
    ) -> Result<bool, A::Error>;
}

/// Declares a shadow struct (every field an `Option`) and its [`Shadow`] impl.
macro_rules! shadow {
    ($(#[$meta:meta])* $name:ident $(<$a:lifetime>)? { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Default)]
        pub(crate) struct $name $(<$a>)? {
            $(pub(crate) $field: Option<$ty>,)*
        }

        impl<'de $(, $a)?> $crate::shadow::Shadow<'de> for $name $(<$a>)? $(where 'de: $a)? {
            fn read_field<A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                seen: &mut u32,
                map: &mut A,
                unknowns: &mut $crate::shadow::Unknowns<'_>,
            ) -> Result<bool, A::Error> {
                let mut bit = 1u32;
                $(
                    if key == stringify!($field) {
                        if *seen & bit != 0 {
                            return Err(serde::de::Error::duplicate_field(stringify!($field)));
                        }
                        *seen |= bit;
                        self.$field = unknowns.within(stringify!($field), |unknowns| {
                            map.next_value_seed($crate::shadow::Seed::new(unknowns))
                        })?;
                        return Ok(true);
                    }
                    bit <<= 1;
                )*
                debug_assert!(bit != 0, "a shadow struct has at most 31 fields");
                Ok(false)
            }
        }
    };
}
pub(crate) use shadow;

/// A value of a shadow field, read with the unknown-field report at hand.
pub(crate) trait Value<'de>: Sized {
    fn read<D: Deserializer<'de>>(
        deserializer: D,
        unknowns: &mut Unknowns<'_>,
    ) -> Result<Self, D::Error>;
}

/// Reads a `V` where serde wants a seed.
pub(crate) struct Seed<'u, 'r, V> {
    unknowns: &'u mut Unknowns<'r>,
    value: PhantomData<V>,
}

impl<'u, 'r, V> Seed<'u, 'r, V> {
    pub(crate) fn new(unknowns: &'u mut Unknowns<'r>) -> Self {
        Seed {
            unknowns,
            value: PhantomData,
        }
    }
}

impl<'de, V: Value<'de>> DeserializeSeed<'de> for Seed<'_, '_, V> {
    type Value = V;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V, D::Error> {
        V::read(deserializer, self.unknowns)
    }
}

/// Numbers: nothing inside them can be unknown.
macro_rules! plain_value {
    ($($ty:ty),*) => {$(
        impl<'de> Value<'de> for $ty {
            fn read<D: Deserializer<'de>>(deserializer: D, _: &mut Unknowns<'_>) -> Result<Self, D::Error> {
                serde::Deserialize::deserialize(deserializer)
            }
        }
    )*};
}
plain_value!(f64, i64);

/// A string, borrowed from the input unless it had escapes.
impl<'de: 'a, 'a> Value<'de> for Cow<'a, str> {
    fn read<D: Deserializer<'de>>(deserializer: D, _: &mut Unknowns<'_>) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

struct TextVisitor<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text))
    }
}

/// `null` or a value.
impl<'de, V: Value<'de>> Value<'de> for Option<V> {
    fn read<D: Deserializer<'de>>(
        deserializer: D,
        unknowns: &mut Unknowns<'_>,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_option(OptionVisitor(Seed::<V>::new(unknowns)))
    }
}

struct OptionVisitor<'u, 'r, V>(Seed<'u, 'r, V>);

impl<'de, V: Value<'de>> Visitor<'de> for OptionVisitor<'_, '_, V> {
    type Value = Option<V>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("null or a value")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Some)
    }
}

/// An array; unknown fields inside its elements are reported without an index.
impl<'de, V: Value<'de>> Value<'de> for Vec<V> {
    fn read<D: Deserializer<'de>>(
        deserializer: D,
        unknowns: &mut Unknowns<'_>,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ListVisitor {
            unknowns,
            element: PhantomData,
        })
    }
}

struct ListVisitor<'u, 'r, V> {
    unknowns: &'u mut Unknowns<'r>,
    element: PhantomData<V>,
}

impl<'de, V: Value<'de>> Visitor<'de> for ListVisitor<'_, '_, V> {
    type Value = Vec<V>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let mut elements = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
        while let Some(element) = seq.next_element_seed(Seed::<V>::new(self.unknowns))? {
            elements.push(element);
        }
        Ok(elements)
    }
}

/// An object of the contract.
impl<'de, T: Shadow<'de>> Value<'de> for T {
    fn read<D: Deserializer<'de>>(
        deserializer: D,
        unknowns: &mut Unknowns<'_>,
    ) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor {
            unknowns,
            object: PhantomData,
        })
    }
}

struct ObjectVisitor<'u, 'r, T> {
    unknowns: &'u mut Unknowns<'r>,
    object: PhantomData<T>,
}

impl<'de, T: Shadow<'de>> Visitor<'de> for ObjectVisitor<'_, '_, T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut object = T::default();
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if !object.read_field(&key, &mut seen, &mut map, self.unknowns)? {
                self.unknowns.report(&key);
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(object)
    }
}

/// A key, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}
