//! A deterministic sample of 40 customers and 100 incidents (`--demo-data`),
//! generated here from small word lists so that a fresh
//! `duality serve --demo-data` shows a full dashboard at once, and a few
//! persons in three cities, so the persons and locations panels are not
//! empty either.

use serde_json::{Value, json};

use super::aggregate::{CUSTOMERS, INCIDENTS};
use super::persons::rules::{self as persons, NewPerson};
use duality::Write;

const FIRST: [&str; 10] = [
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas",
];
const LAST: [&str; 8] = [
    "Amsel", "Birkholz", "Corvo", "Dalgaard", "Esposito", "Falk", "Grün", "Halloran",
];
const PLACES: [(&str, &str); 8] = [
    ("Lisbon", "Portugal"),
    ("Turin", "Italy"),
    ("Tartu", "Estonia"),
    ("Ghent", "Belgium"),
    ("Bergen", "Norway"),
    ("Izmir", "Turkey"),
    ("Kraków", "Poland"),
    ("Valencia", "Spain"),
];
const CATEGORIES: [&str; 5] = ["billing", "delivery", "outage", "damage", "support"];

/// A small deterministic generator (xorshift64*), so the sample is the same
/// on every machine.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }
}

/// `(id, document)` pairs for 40 customers with distinct names.
pub fn customers() -> Vec<(String, Value)> {
    let mut dice = Dice(0x5EED_0001);
    (0..40)
        .map(|i| {
            let name = format!("{} {}", FIRST[i % 10], LAST[(i / 10 + i) % 8]);
            let (city, country) = PLACES[dice.below(PLACES.len() as u64) as usize];
            let scoring = dice.below(11);
            let doc = json!({"name": name, "city": city, "country": country, "scoring": scoring});
            (dice.uuid(), doc)
        })
        .collect()
}

/// `(id, document)` pairs for 100 incidents; a few name no customer.
pub fn incidents() -> Vec<(String, Value)> {
    let names: Vec<String> = customers()
        .into_iter()
        .map(|(_, c)| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut dice = Dice(0x5EED_0002);
    (0..100)
        .map(|i| {
            // Skewed towards the first customers, so the lists have leaders.
            let pick = dice
                .below(names.len() as u64)
                .min(dice.below(names.len() as u64));
            let customer = if i % 25 == 24 {
                "Unknown Trader Ltd".to_string()
            } else {
                names[pick as usize].clone()
            };
            let cents = 500 + dice.below(2_000_000);
            let doc = json!({
                "amount": cents as f64 / 100.0,
                "customerName": customer,
                "category": CATEGORIES[dice.below(CATEGORIES.len() as u64) as usize],
            });
            (dice.uuid(), doc)
        })
        .collect()
}

/// Seven persons; three cities hold all but one of them.
pub fn persons() -> Vec<NewPerson> {
    [
        ("Alma Reyes", Some("Lisbon")),
        ("Bela Novak", Some("Turin")),
        ("Carl Lind", Some("Lisbon")),
        ("Dana Ivers", Some("Ghent")),
        ("Emil Sauer", None),
        ("Fern Ota", Some("Turin")),
        ("Gus Moreau", Some("Lisbon")),
    ]
    .into_iter()
    .map(|(name, city)| NewPerson {
        name: name.into(),
        city: city.map(Into::into),
    })
    .collect()
}

/// The persons sample as one write through the persons write path; it
/// loads nothing once any person was ever created.
pub fn load_persons() -> Write {
    persons::create_first(persons())
}

/// One write that loads the whole sample (one event per view).
pub fn load() -> Write {
    Write::new(&[CUSTOMERS, INCIDENTS], |d| {
        for (id, doc) in customers() {
            d.put(CUSTOMERS, id, doc)?;
        }
        for (id, doc) in incidents() {
            d.put(INCIDENTS, id, doc)?;
        }
        Ok(Value::Null)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::entity::Item;
    use crate::aggregate::{customers, dashboard, incidents};
    use crate::persons::{LOCATIONS, PERSONS};
    use duality::domain::write::MemorySource;
    use std::collections::HashSet;

    #[test]
    fn the_sample_is_deterministic_valid_and_sized_as_documented() {
        let (c, i) = (customers(), incidents());
        assert_eq!(c, customers());
        assert_eq!(c.len(), 40);
        assert_eq!(i.len(), 100);
        let names: HashSet<_> = c.iter().map(|(_, d)| d["name"].clone()).collect();
        assert_eq!(names.len(), 40, "customer names are distinct");
        for (_, doc) in &c {
            assert_eq!(&json!(customers::CustomerDoc::parse_new(doc).unwrap()), doc);
        }
        for (_, doc) in &i {
            assert_eq!(&json!(incidents::IncidentDoc::parse_new(doc).unwrap()), doc);
        }
        let ids: HashSet<_> = c.iter().chain(&i).map(|(id, _)| id.clone()).collect();
        assert_eq!(ids.len(), 140);
        let d = dashboard::compose(&c.into_iter().collect(), &i.into_iter().collect());
        assert_eq!(d["customerCount"], json!(40));
        assert_eq!(d["customersWithMostIncidents"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn the_persons_sample_loads_once_with_its_locations() {
        let mut db = MemorySource::default();
        let (loaded, _) = db.run(&load_persons()).unwrap();
        assert_eq!(loaded, json!(true));
        assert_eq!(db.view(PERSONS).as_object().unwrap().len(), 7);
        assert_eq!(db.view(PERSONS)["5"], json!({"name": "Emil Sauer"}));
        assert_eq!(
            db.view(LOCATIONS),
            json!({"Lisbon": {"total": 3}, "Turin": {"total": 2}, "Ghent": {"total": 1}})
        );
        let (again, plan) = db.run(&load_persons()).unwrap();
        assert_eq!(again, json!(false));
        assert!(plan.changes.is_empty(), "a second load is no event");
    }

    #[test]
    fn the_persons_sample_is_not_loaded_over_persons_created_before() {
        let mut db = MemorySource::default();
        let ann = persons::NewPerson {
            name: "Ann".into(),
            city: None,
        };
        db.run(&persons::create(ann)).unwrap();
        let (loaded, _) = db.run(&load_persons()).unwrap();
        assert_eq!(loaded, json!(false));
        assert_eq!(db.view(PERSONS).as_object().unwrap().len(), 1);
    }
}
