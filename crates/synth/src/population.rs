//! The synthetic world: accounts, installations and chargers.
//!
//! Built once per generator from its own PRNG stream. Every charger belongs
//! to one installation and one owner account; about 10% of installations are
//! commercial with several users; about 30% of chargers have a Sense meter.

use crate::ids;
use crate::rng::Rng;

/// A person (or company login) with an account.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) id: String,
    /// Canonical (lower-case) address; rendered messily per line.
    pub(crate) email: String,
    pub(crate) name: String,
    pub(crate) phone: String,
    /// Canonical upper-case hex RFID tag, if the person has one.
    pub(crate) rfid: Option<String>,
    pub(crate) roles: &'static [&'static str],
}

/// A site with one or more chargers.
#[derive(Debug, Clone)]
pub(crate) struct Installation {
    pub(crate) id: String,
    pub(crate) site_name: String,
    pub(crate) address: String,
    pub(crate) lat: f64,
    pub(crate) lon: f64,
    pub(crate) country: &'static str,
    pub(crate) property_type: &'static str,
    /// Accounts allowed to charge here; the first is the owner.
    pub(crate) users: Vec<usize>,
    /// Third-party charge point operator, if any.
    pub(crate) cpo: Option<String>,
}

/// One charger.
#[derive(Debug, Clone)]
pub(crate) struct Charger {
    pub(crate) serial: String,
    pub(crate) model: &'static str,
    pub(crate) firmware: &'static str,
    /// Serials of attached Sense energy meters.
    pub(crate) components: Vec<String>,
    pub(crate) installation: usize,
    pub(crate) owner: usize,
    pub(crate) ip: String,
    pub(crate) energy_base_wh: f64,
    pub(crate) phases: u8,
    pub(crate) max_current_a: f64,
}

/// Everything lines are drawn from.
#[derive(Debug, Clone)]
pub(crate) struct Population {
    pub(crate) accounts: Vec<Account>,
    pub(crate) installations: Vec<Installation>,
    pub(crate) chargers: Vec<Charger>,
    /// RFID tags with no account (anonymous charging cards).
    pub(crate) anonymous_tags: Vec<String>,
}

/// Number of chargers for a run of `count` lines: `count / 200`, at least 50,
/// at most 200,000.
pub(crate) fn charger_count_for(count: u64) -> usize {
    (count / 200).clamp(50, MAX_CHARGERS as u64) as usize
}

/// The largest fleet generated.
pub(crate) const MAX_CHARGERS: usize = 200_000;

struct Region {
    country: &'static str,
    phone_prefix: &'static str,
    phone_digits: usize,
    /// (city, postcode, lat, lon)
    cities: &'static [(&'static str, &'static str, f64, f64)],
    streets: &'static [&'static str],
    first: &'static [&'static str],
    last: &'static [&'static str],
    domains: &'static [&'static str],
}

const REGIONS: [(&Region, u32); 7] = [
    (&NO, 45),
    (&SE, 15),
    (&DK, 10),
    (&DE, 10),
    (&GB, 10),
    (&NL, 5),
    (&FR, 5),
];

const NO: Region = Region {
    country: "NO",
    phone_prefix: "+479",
    phone_digits: 7,
    cities: &[
        ("Oslo", "0150", 59.9139, 10.7522),
        ("Bergen", "5003", 60.3913, 5.3221),
        ("Stavanger", "4006", 58.9700, 5.7331),
        ("Trondheim", "7011", 63.4305, 10.3951),
        ("Tromsø", "9008", 69.6492, 18.9553),
        ("Kristiansand", "4611", 58.1467, 7.9956),
        ("Drammen", "3015", 59.7439, 10.2045),
        ("Ålesund", "6002", 62.4722, 6.1495),
    ],
    streets: &[
        "Solbakken",
        "Storgata",
        "Kirkeveien",
        "Bjørnstadveien",
        "Fjordgata",
        "Granveien",
        "Åsveien",
        "Skogveien",
        "Havnegata",
        "Lillehagen",
    ],
    first: &[
        "Kari", "Ola", "Ingrid", "Lars", "Sigrid", "Håkon", "Åse", "Bjørn", "Nora", "Emil",
        "Marte", "Øystein",
    ],
    last: &[
        "Nordmann",
        "Hansen",
        "Johansen",
        "Olsen",
        "Larsen",
        "Berg",
        "Haugen",
        "Ødegård",
        "Bakke",
        "Solberg",
        "Dahl",
        "Sæther",
    ],
    domains: &[
        "online.no",
        "gmail.com",
        "hotmail.com",
        "outlook.com",
        "icloud.com",
        "live.no",
    ],
};

const SE: Region = Region {
    country: "SE",
    phone_prefix: "+467",
    phone_digits: 8,
    cities: &[
        ("Stockholm", "111 20", 59.3293, 18.0686),
        ("Göteborg", "411 01", 57.7089, 11.9746),
        ("Malmö", "211 15", 55.6050, 13.0038),
        ("Uppsala", "752 20", 59.8586, 17.6389),
    ],
    streets: &[
        "Storgatan",
        "Kungsgatan",
        "Drottninggatan",
        "Björkvägen",
        "Skolgatan",
    ],
    first: &[
        "Erik", "Anna", "Karl", "Maja", "Johan", "Elsa", "Björn", "Åsa",
    ],
    last: &[
        "Andersson",
        "Johansson",
        "Karlsson",
        "Nilsson",
        "Lindqvist",
        "Öberg",
    ],
    domains: &["gmail.com", "telia.com", "hotmail.se", "outlook.com"],
};

const DK: Region = Region {
    country: "DK",
    phone_prefix: "+45",
    phone_digits: 8,
    cities: &[
        ("København", "1050", 55.6761, 12.5683),
        ("Aarhus", "8000", 56.1629, 10.2039),
        ("Odense", "5000", 55.4038, 10.4024),
    ],
    streets: &[
        "Østergade",
        "Vesterbrogade",
        "Nørrebrogade",
        "Strandvejen",
        "Ærøgade",
    ],
    first: &["Mette", "Søren", "Freja", "Mads", "Ida", "Jørgen"],
    last: &[
        "Jensen",
        "Nielsen",
        "Pedersen",
        "Sørensen",
        "Møller",
        "Kjær",
    ],
    domains: &["gmail.com", "mail.dk", "hotmail.dk", "outlook.dk"],
};

const DE: Region = Region {
    country: "DE",
    phone_prefix: "+4915",
    phone_digits: 9,
    cities: &[
        ("Berlin", "10115", 52.5200, 13.4050),
        ("Hamburg", "20095", 53.5511, 9.9937),
        ("München", "80331", 48.1351, 11.5820),
        ("Köln", "50667", 50.9375, 6.9603),
    ],
    streets: &[
        "Hauptstraße",
        "Bahnhofstraße",
        "Gartenweg",
        "Lindenallee",
        "Müllerstraße",
    ],
    first: &["Jürgen", "Anna", "Lukas", "Sophie", "Maximilian", "Jörg"],
    last: &["Müller", "Schmidt", "Schneider", "Fischer", "Weiß", "Groß"],
    domains: &["gmx.de", "web.de", "t-online.de", "gmail.com"],
};

const GB: Region = Region {
    country: "GB",
    phone_prefix: "+447",
    phone_digits: 9,
    cities: &[
        ("London", "EC1A 1BB", 51.5074, -0.1278),
        ("Manchester", "M1 1AE", 53.4808, -2.2426),
        ("Edinburgh", "EH1 1YZ", 55.9533, -3.1883),
    ],
    streets: &[
        "High Street",
        "Station Road",
        "Church Lane",
        "Victoria Road",
        "Mill Lane",
    ],
    first: &["Oliver", "Amelia", "Harry", "Isla", "George", "Siobhan"],
    last: &["Smith", "Jones", "Taylor", "O'Brien", "Williams", "Brown"],
    domains: &["gmail.com", "btinternet.com", "outlook.com", "yahoo.co.uk"],
};

const NL: Region = Region {
    country: "NL",
    phone_prefix: "+316",
    phone_digits: 8,
    cities: &[
        ("Amsterdam", "1012 AB", 52.3676, 4.9041),
        ("Utrecht", "3511 AA", 52.0907, 5.1214),
    ],
    streets: &["Kerkstraat", "Dorpsstraat", "Molenweg", "Prinsengracht"],
    first: &["Daan", "Emma", "Sem", "Julia", "Bram"],
    last: &["de Jong", "Jansen", "de Vries", "van Dijk", "Bakker"],
    domains: &["ziggo.nl", "kpnmail.nl", "gmail.com"],
};

const FR: Region = Region {
    country: "FR",
    phone_prefix: "+336",
    phone_digits: 8,
    cities: &[
        ("Paris", "75001", 48.8566, 2.3522),
        ("Lyon", "69001", 45.7640, 4.8357),
    ],
    streets: &[
        "Rue de la Paix",
        "Avenue Victor Hugo",
        "Rue Émile Zola",
        "Boulevard Voltaire",
    ],
    first: &["Léa", "Hugo", "Chloé", "Jérôme", "Inès"],
    last: &["Martin", "Bernard", "Dubois", "Lefèvre", "Girard"],
    domains: &["orange.fr", "free.fr", "gmail.com", "laposte.net"],
};

const COMPANIES: &[&str] = &[
    "Nordic Logistics AS",
    "Fjord Hotell",
    "Kafé \"Sjøbua\"",
    "Byggmester Hansen & Sønn",
    "Coastal Offices Ltd",
    "Grünwald GmbH",
    "Kommunehuset",
    "Bilforhandler Øst",
    "Tech Park West",
];

const FIRMWARE: [(&str, u32); 6] = [
    ("2.4.1", 35),
    ("2.4.0", 20),
    ("2.5.0", 15),
    ("2.3.7", 15),
    ("2.5.1-rc2", 5),
    ("1.9.12", 10),
];

/// Folds a display name to e-mail-safe lower-case ASCII.
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'a'..='z' | '0'..='9' => out.push(c),
            'æ' => out.push_str("ae"),
            'ø' | 'ö' | 'ó' | 'ô' => out.push('o'),
            'å' | 'ä' | 'á' | 'à' => out.push('a'),
            'ü' | 'ú' => out.push('u'),
            'é' | 'è' | 'ê' | 'ë' => out.push('e'),
            'î' | 'ï' | 'í' => out.push('i'),
            'ç' => out.push('c'),
            'ß' => out.push_str("ss"),
            _ => {}
        }
    }
    out
}

/// A random public-looking IPv4 or IPv6 address.
pub(crate) fn random_ip(rng: &mut Rng) -> String {
    if rng.per_mille(150) {
        let prefix = rng.pick(&["2a02:fe1", "2001:4647", "2a01:79d", "2003:e2", "2a00:23c6"]);
        format!(
            "{prefix}:{:x}:{:x}::{:x}",
            rng.below(0x1_0000),
            rng.below(0x1_0000),
            rng.range(1, 0xFFFF)
        )
    } else {
        let first = rng.pick(&[81u8, 84, 85, 88, 89, 92, 109, 146, 178, 193, 212, 217, 100]);
        format!(
            "{first}.{}.{}.{}",
            rng.below(256),
            rng.below(256),
            rng.range(1, 254)
        )
    }
}

impl Population {
    /// Builds a world with exactly `charger_count` chargers.
    pub(crate) fn new(rng: &mut Rng, charger_count: usize) -> Self {
        let mut pop = Self {
            accounts: Vec::new(),
            installations: Vec::new(),
            chargers: Vec::with_capacity(charger_count),
            anonymous_tags: Vec::new(),
        };
        // Bijective scrambles of the index so serials look random but are unique.
        let serial_offset = rng.below(1_000_000);
        let sense_offset = rng.below(1_000_000);
        let mut sense_count: u64 = 0;

        while pop.chargers.len() < charger_count {
            let region = rng.weighted(&REGIONS);
            let property_type =
                rng.weighted(&[("house", 65), ("apartment", 25), ("commercial", 10)]);
            let commercial = property_type == "commercial";
            let (city, postcode, city_lat, city_lon) = *rng.pick(region.cities);

            let owner = pop.add_account(
                rng,
                region,
                if commercial {
                    &["owner", "admin"]
                } else {
                    &["owner"]
                },
            );
            let mut users = vec![owner];
            let extra = match property_type {
                "commercial" => rng.range(3, 20) as usize,
                "house" if rng.per_mille(350) => 1,
                "apartment" if rng.per_mille(100) => 1,
                _ => 0,
            };
            for _ in 0..extra {
                let roles: &'static [&'static str] = if commercial {
                    if rng.per_mille(100) {
                        &["user", "admin"]
                    } else {
                        &["user"]
                    }
                } else {
                    &["member"]
                };
                users.push(pop.add_account(rng, region, roles));
            }

            let street = *rng.pick(region.streets);
            let number = rng.range(1, 140);
            let first = *rng.pick(region.first);
            let last = *rng.pick(region.last);
            let site_name = match property_type {
                "commercial" => {
                    let company = *rng.pick(COMPANIES);
                    if rng.per_mille(500) {
                        format!("{company} {city}")
                    } else {
                        format!("{company} – gjesteparkering P{}", rng.range(1, 9))
                    }
                }
                "apartment" => format!("{street} {number} borettslag plass {}", rng.range(1, 80)),
                _ => match rng.below(4) {
                    0 => format!("{street} {number} garage"),
                    1 => format!("{first} {last}s carport"),
                    2 => format!("Hytta i {city}"),
                    _ => "Home".to_string(),
                },
            };
            let separator = if rng.per_mille(50) { "\n" } else { ", " };
            let address = if property_type == "apartment" {
                format!(
                    "{street} {number}, H0{}{separator}{postcode} {city}",
                    rng.range(101, 410)
                )
            } else {
                format!("{street} {number}{separator}{postcode} {city}")
            };
            let cpo = if rng.per_mille(if commercial { 600 } else { 30 }) {
                Some(format!("cpo-{:04}", rng.below(200)))
            } else {
                None
            };
            let installation = pop.installations.len();
            pop.installations.push(Installation {
                id: ids::uuid_v4(rng, false),
                site_name,
                address,
                lat: city_lat + rng.float(-0.12, 0.12),
                lon: city_lon + rng.float(-0.2, 0.2),
                country: region.country,
                property_type,
                users,
                cpo,
            });

            let chargers_here = match property_type {
                "commercial" => rng.range(2, 8) as usize,
                "house" if rng.per_mille(120) => 2,
                _ => 1,
            };
            for _ in 0..chargers_here.min(charger_count - pop.chargers.len()) {
                let index = pop.chargers.len() as u64;
                let serial = format!("ZAP{:06}", (index * 7919 + serial_offset) % 1_000_000);
                let mut components = Vec::new();
                if rng.per_mille(300) {
                    let sensors = if rng.per_mille(30) { 2 } else { 1 };
                    for _ in 0..sensors {
                        let n = (sense_count * 7907 + sense_offset) % 1_000_000;
                        sense_count += 1;
                        components.push(format!("SNS{n:05}"));
                    }
                }
                let model = if commercial {
                    rng.weighted(&[("pro", 70), ("go2", 30)])
                } else {
                    rng.weighted(&[("go", 50), ("go2", 45), ("pro", 5)])
                };
                pop.chargers.push(Charger {
                    serial,
                    model,
                    firmware: rng.weighted(&FIRMWARE),
                    components,
                    installation,
                    owner,
                    ip: random_ip(rng),
                    energy_base_wh: rng.float(50_000.0, 25_000_000.0),
                    phases: if rng.per_mille(700) { 3 } else { 1 },
                    max_current_a: *rng.pick(&[10.0, 16.0, 16.0, 20.0, 32.0]),
                });
            }
        }

        let tags = charger_count / 5 + 20;
        pop.anonymous_tags = (0..tags)
            .map(|_| format!("04{}", ids::hex_upper(rng, 12)))
            .collect();
        pop
    }

    fn add_account(
        &mut self,
        rng: &mut Rng,
        region: &Region,
        roles: &'static [&'static str],
    ) -> usize {
        let first = *rng.pick(region.first);
        let last = *rng.pick(region.last);
        let suffix = if rng.per_mille(300) {
            rng.range(1, 99).to_string()
        } else {
            String::new()
        };
        let email = format!(
            "{}.{}{suffix}@{}",
            ascii_fold(first),
            ascii_fold(last),
            rng.pick(region.domains)
        );
        let phone = format!(
            "{}{}",
            region.phone_prefix,
            ids::digits(rng, region.phone_digits)
        );
        let rfid = rng
            .per_mille(600)
            .then(|| format!("04{}", ids::hex_upper(rng, 12)));
        self.accounts.push(Account {
            id: ids::uuid_v4(rng, false),
            email,
            name: format!("{first} {last}"),
            phone,
            rfid,
            roles,
        });
        self.accounts.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn population_has_the_advertised_shape() {
        let mut rng = Rng::new(5);
        let pop = Population::new(&mut rng, 5000);
        assert_eq!(pop.chargers.len(), 5000);
        let serials: std::collections::HashSet<&str> =
            pop.chargers.iter().map(|c| c.serial.as_str()).collect();
        assert_eq!(serials.len(), 5000);
        let with_sense = pop
            .chargers
            .iter()
            .filter(|c| !c.components.is_empty())
            .count();
        assert!((1200..1800).contains(&with_sense), "{with_sense}");
        let commercial = pop
            .installations
            .iter()
            .filter(|i| i.property_type == "commercial")
            .count();
        let share = commercial as f64 / pop.installations.len() as f64;
        assert!((0.06..0.14).contains(&share), "{share}");
        for inst in &pop.installations {
            assert!((-90.0..=90.0).contains(&inst.lat));
            assert!((-180.0..=180.0).contains(&inst.lon));
        }
        assert_eq!(ascii_fold("Ødegård"), "odegard");
        assert_eq!(charger_count_for(1_000_000), 5000);
        assert_eq!(charger_count_for(10), 50);
        assert_eq!(charger_count_for(u64::MAX), 200_000);
    }
}
