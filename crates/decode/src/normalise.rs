//! Identifier normalisation (privacy model, "normalisation is part of the contract").
//!
//! Each function borrows when the input is already normal, so the common
//! case allocates nothing.

use std::borrow::Cow;

/// Trims blanks and lower-cases: UUIDs, ULIDs, e-mail addresses.
pub(crate) fn lower(value: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed_is_same = value.trim().len() == value.len();
    if trimmed_is_same && !value.chars().any(char::is_uppercase) {
        return value;
    }
    Cow::Owned(value.trim().to_lowercase())
}

/// Trims blanks and upper-cases: charger and component serials.
pub(crate) fn upper(value: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed_is_same = value.trim().len() == value.len();
    if trimmed_is_same && !value.chars().any(char::is_lowercase) {
        return value;
    }
    Cow::Owned(value.trim().to_uppercase())
}

/// Removes every blank and lower-cases: RFID tags.
pub(crate) fn compact_lower(value: Cow<'_, str>) -> Cow<'_, str> {
    if !value.chars().any(|c| c.is_whitespace() || c.is_uppercase()) {
        return value;
    }
    Cow::Owned(
        value
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect(),
    )
}

/// Removes every blank: phone numbers.
pub(crate) fn compact(value: Cow<'_, str>) -> Cow<'_, str> {
    if !value.chars().any(char::is_whitespace) {
        return value;
    }
    Cow::Owned(value.chars().filter(|c| !c.is_whitespace()).collect())
}

/// Trims blanks: names and other free text.
pub(crate) fn trim(value: Cow<'_, str>) -> Cow<'_, str> {
    match value {
        Cow::Borrowed(text) => Cow::Borrowed(text.trim()),
        Cow::Owned(text) if text.trim().len() == text.len() => Cow::Owned(text),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfid_tags_lose_case_and_blanks() {
        assert_eq!(compact_lower("04a2 24B2 c13f 80".into()), "04a224b2c13f80");
        assert_eq!(compact_lower(" 04A224B2C13F80 ".into()), "04a224b2c13f80");
        assert!(matches!(compact_lower("04a224b2".into()), Cow::Borrowed(_)));
    }

    #[test]
    fn emails_are_trimmed_and_lowered() {
        assert_eq!(
            lower("  Kari.Nordmann@Example.NO ".into()),
            "kari.nordmann@example.no"
        );
        assert!(matches!(lower("a@b.no".into()), Cow::Borrowed(_)));
    }

    #[test]
    fn serials_are_upper_cased() {
        assert_eq!(upper(" zap049123".into()), "ZAP049123");
    }

    #[test]
    fn phones_lose_blanks_and_text_is_trimmed() {
        assert_eq!(compact("+47 912 34 567".into()), "+4791234567");
        assert_eq!(trim("  Kari ".into()), "Kari");
    }
}
