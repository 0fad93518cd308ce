//! Identifiers (UUID v4, ULID) and the messy renderings real producers send:
//! RFID tags in mixed case with stray spaces, e-mails with odd case and blanks.

use crate::rng::Rng;

/// A random version-4 UUID, lower or upper case hex.
pub(crate) fn uuid_v4(rng: &mut Rng, upper: bool) -> String {
    let hi = (rng.next_u64() & !0xF000) | 0x4000;
    let lo = (rng.next_u64() & !(0b11 << 62)) | (0b10 << 62);
    let (a, b, c) = (hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF);
    let (d, e) = (lo >> 48, lo & 0xFFFF_FFFF_FFFF);
    if upper {
        format!("{a:08X}-{b:04X}-{c:04X}-{d:04X}-{e:012X}")
    } else {
        format!("{a:08x}-{b:04x}-{c:04x}-{d:04x}-{e:012x}")
    }
}

/// A ULID (26 Crockford base32 characters) for `millis` plus 80 random bits.
pub(crate) fn ulid(rng: &mut Rng, millis: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let random = (u128::from(rng.next_u64()) << 16) | u128::from(rng.next_u64() >> 48);
    let value = (u128::from(millis & 0xFFFF_FFFF_FFFF) << 80) | random;
    (0..26)
        .map(|i| char::from(ALPHABET[((value >> ((25 - i) * 5)) & 31) as usize]))
        .collect()
}

/// `n` random upper-case hex digits.
pub(crate) fn hex_upper(rng: &mut Rng, n: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    (0..n).map(|_| char::from(*rng.pick(HEX))).collect()
}

/// `n` random decimal digits.
pub(crate) fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

/// An RFID tag (canonical upper-case hex) as a reader or app might send it:
/// `04A224B2C13F80`, `04a2 24b2 c13f 80`, `04 A2 24 B2 ...`, `04a224B2c13f80`,
/// occasionally with surrounding spaces.
pub(crate) fn render_rfid(rng: &mut Rng, canonical: &str) -> String {
    let case = rng.weighted(&[(0u8, 40), (1, 30), (2, 30)]);
    let cased: Vec<char> = canonical
        .chars()
        .map(|c| match case {
            0 => c.to_ascii_uppercase(),
            1 => c.to_ascii_lowercase(),
            _ if rng.per_mille(500) => c.to_ascii_lowercase(),
            _ => c.to_ascii_uppercase(),
        })
        .collect();
    let group = rng.weighted(&[(0usize, 40), (4, 30), (2, 20), (1, 10)]);
    let mut out = String::with_capacity(cased.len() * 2 + 2);
    if rng.per_mille(40) {
        out.push(' ');
    }
    for (i, c) in cased.iter().enumerate() {
        let boundary = match group {
            0 => false,
            // "random spaces": a space after roughly one char in six.
            1 => rng.per_mille(160),
            g => i % g == 0,
        };
        if i > 0 && boundary {
            out.push(' ');
        }
        out.push(*c);
    }
    if rng.per_mille(40) {
        out.push(' ');
    }
    out
}

/// An e-mail address (canonical lower case) in mixed case, sometimes with
/// surrounding blanks: `Kari.Nordmann@example.no`, ` KARI.NORDMANN@EXAMPLE.NO `.
pub(crate) fn render_email(rng: &mut Rng, canonical: &str) -> String {
    let mode = rng.weighted(&[(0u8, 50), (1, 25), (2, 15), (3, 10)]);
    let mut out = String::with_capacity(canonical.len() + 4);
    if rng.per_mille(200) {
        out.push_str(if rng.per_mille(100) { "\t" } else { " " });
    }
    let mut word_start = true;
    let mut in_domain = false;
    for c in canonical.chars() {
        let upper = match mode {
            0 => false,
            1 => word_start && !in_domain,
            2 => rng.per_mille(300),
            _ => true,
        };
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        word_start = matches!(c, '.' | '-' | '_');
        in_domain |= c == '@';
    }
    if rng.per_mille(200) {
        out.push_str(if rng.per_mille(500) { "  " } else { " " });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_ulid_shapes() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let u = uuid_v4(&mut rng, false);
            assert_eq!(u.len(), 36);
            assert_eq!(&u[14..15], "4");
            assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
            assert!(
                uuid_v4(&mut rng, true)
                    .chars()
                    .all(|c| !c.is_ascii_lowercase())
            );
            let l = ulid(&mut rng, 1_763_646_312_345);
            assert_eq!(l.len(), 26);
            assert!(l.starts_with("01K"), "{l}");
        }
    }

    #[test]
    fn renderings_normalise_back() {
        let mut rng = Rng::new(2);
        for _ in 0..1000 {
            let r = render_rfid(&mut rng, "04A224B2C13F80");
            let norm: String = r
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_uppercase();
            assert_eq!(norm, "04A224B2C13F80");
            let e = render_email(&mut rng, "kari.nordmann@example.no");
            assert_eq!(e.trim().to_ascii_lowercase(), "kari.nordmann@example.no");
        }
    }
}
