//! Persons and the locations view derived from them (README, "What it serves").
//!
//! A person is `{"name", "city"?}` keyed by a server-assigned integer id.
//! Every person write also keeps `locations` exact: each city with at least
//! one person maps to `{"total": n}`, and a city whose total drops to 0
//! disappears. Both views change in the same write, so one request is one
//! event per view it changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{LOCATIONS, PERSONS};
use duality::{Draft, Error, Output, View, Write};

/// The id counter for persons: ids are never reused, also not after a delete.
const PERSON_IDS: &str = "persons";

/// The body of `POST /persons`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPerson {
    /// The person's name; non-empty.
    pub name: String,
    /// The person's city, non-empty if given; a person without a city leaves it
    /// out.
    #[serde(default)]
    pub city: Option<String>,
}

/// The body of `PATCH /persons/{id}`: a merge patch of the person. `None`
/// leaves a field alone; `Some(None)` removes the city.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersonPatch {
    /// The new name, if it changes.
    pub name: Option<String>,
    /// `Some(Some(city))` sets the city, `Some(None)` removes it.
    pub city: Option<Option<String>>,
}

impl NewPerson {
    /// Reads the body of `POST /persons`: an object with a non-empty
    /// string `name` and, optionally, a non-empty string `city` (a person
    /// without a city leaves it out; `null` is refused, as documents never
    /// hold null), and nothing else.
    pub fn parse(body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(invalid("the body must be a JSON object"));
        };
        let mut name = None;
        let mut city = None;
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("name", Value::String(s)) => name = Some(valid_name(s)?),
                ("name", _) => return Err(invalid("name must be a string")),
                ("city", Value::String(s)) => city = Some(valid_city(s)?),
                ("city", _) => {
                    return Err(invalid(
                        "city must be a string (leave it out for a person without a city)",
                    ));
                }
                (other, _) => {
                    return Err(invalid(format!(
                        "unknown field `{other}`, expected `name` or `city`"
                    )));
                }
            }
        }
        let name = name.ok_or_else(|| invalid("name is required"))?;
        Ok(NewPerson { name, city })
    }

    /// Checks a body built in Rust the way `parse` checks JSON: name and city,
    /// if any, must be non-empty.
    pub fn validate(self) -> Result<Self, Error> {
        Ok(NewPerson {
            name: valid_name(&self.name)?,
            city: self.city.as_deref().map(valid_city).transpose()?,
        })
    }
}

impl PersonPatch {
    /// Reads a merge patch of a person; refuses anything but `name` (a
    /// non-empty string) and `city` (a non-empty string or null).
    pub fn parse(body: &Value) -> Result<Self, Error> {
        let Value::Object(fields) = body else {
            return Err(invalid("the body must be a JSON object"));
        };
        let mut patch = PersonPatch::default();
        for (field, value) in fields {
            match (field.as_str(), value) {
                ("name", Value::String(s)) => patch.name = Some(valid_name(s)?),
                ("name", Value::Null) => return Err(invalid("name cannot be removed")),
                ("name", _) => return Err(invalid("name must be a string")),
                ("city", Value::String(s)) => patch.city = Some(Some(valid_city(s)?)),
                ("city", Value::Null) => patch.city = Some(None),
                ("city", _) => return Err(invalid("city must be a string or null")),
                (other, _) => {
                    return Err(invalid(format!(
                        "unknown field `{other}`, expected `name` or `city`"
                    )));
                }
            }
        }
        Ok(patch)
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

fn valid_name(name: &str) -> Result<String, Error> {
    if name.trim().is_empty() {
        return Err(invalid("name must be a non-empty string"));
    }
    Ok(name.to_string())
}

fn valid_city(city: &str) -> Result<String, Error> {
    if city.trim().is_empty() {
        return Err(invalid(
            "city must be a non-empty string (use null to remove it)",
        ));
    }
    Ok(city.to_string())
}

/// Parses a person id from a path segment: a positive integer.
pub fn parse_id(raw: &str) -> Result<u64, Error> {
    match crate::fields::path_integer(raw, 1) {
        Some(id) => Ok(id),
        None => Err(invalid(format!(
            "person id must be a positive integer, got `{raw}`"
        ))),
    }
}

/// A stored person: the document of the `persons` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonDoc {
    /// The person's name; non-empty.
    pub name: String,
    /// The person's city, non-empty; absent (not null) for a person without a
    /// city.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
}

/// A person as the API shows it: the document with its `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// The server-assigned id, never reused.
    pub id: u64,
    /// The stored fields, flattened beside the id.
    #[serde(flatten)]
    pub doc: PersonDoc,
}

/// A city's document in the `locations` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationDoc {
    /// How many persons live in the city; always at least 1, as a city at 0 is
    /// deleted.
    pub total: u64,
}

fn answer(person: Person) -> Result<Value, Error> {
    serde_json::to_value(person).map_err(|e| invalid(format!("internal: a person: {e}")))
}

/// Moves one person's weight in `locations` by `delta` for `city`.
fn count(d: &mut Draft<'_>, city: &str, delta: i64) -> Result<(), Error> {
    let now = d
        .read::<LocationDoc>(LOCATIONS, city)?
        .map_or(0, |l| l.total);
    let total = now.saturating_add_signed(delta);
    if total > 0 {
        d.write(LOCATIONS, city, &LocationDoc { total })
    } else {
        d.delete(LOCATIONS, city);
        Ok(())
    }
}

const VIEWS: &[View] = &[PERSONS, LOCATIONS];

/// Adds `person` under a new id and counts its city; answers it with the id.
fn add(d: &mut Draft<'_>, person: &NewPerson) -> Result<Value, Error> {
    let id = d.next_id(PERSON_IDS)?;
    let doc = PersonDoc {
        name: person.name.clone(),
        city: person.city.clone(),
    };
    d.write(PERSONS, id.to_string(), &doc)?;
    if let Some(city) = &person.city {
        count(d, city, 1)?;
    }
    answer(Person { id, doc })
}

/// `POST /persons`: answers the person with its new id.
pub fn create(person: NewPerson) -> Write {
    Write::new(VIEWS, move |d| add(d, &person))
}

/// Adds `people` (ids 1, 2, …) in one write, only if no person was ever
/// created; answers whether it did. The check runs inside the write, so
/// processes that start together on one database load them once.
pub fn create_first(people: Vec<NewPerson>) -> Write {
    Write::new(VIEWS, move |d| {
        // The id counter starts at 1: above it, a person was created.
        if d.counter(PERSON_IDS)? > 1 {
            return Ok(Value::Bool(false));
        }
        for person in &people {
            add(d, person)?;
        }
        Ok(Value::Bool(true))
    })
}

fn not_found(id: u64) -> Error {
    Error::NotFound(format!("no person with id {id}"))
}

/// `PATCH /persons/{id}`: answers the person after the patch.
pub fn patch(id: u64, patch: PersonPatch) -> Write {
    Write::new(VIEWS, move |d| {
        let key = id.to_string();
        let old: PersonDoc = d.read(PERSONS, &key)?.ok_or_else(|| not_found(id))?;
        let doc = PersonDoc {
            name: patch.name.clone().unwrap_or_else(|| old.name.clone()),
            city: match &patch.city {
                Some(city) => city.clone(),
                None => old.city.clone(),
            },
        };
        d.write(PERSONS, key, &doc)?;
        if old.city != doc.city {
            if let Some(city) = &old.city {
                count(d, city, -1)?;
            }
            if let Some(city) = &doc.city {
                count(d, city, 1)?;
            }
        }
        answer(Person { id, doc })
    })
}

/// `DELETE /persons/{id}`.
pub fn delete(id: u64) -> Write {
    Write::new(VIEWS, move |d| {
        let key = id.to_string();
        let old: PersonDoc = d.read(PERSONS, &key)?.ok_or_else(|| not_found(id))?;
        d.delete(PERSONS, key);
        if let Some(city) = &old.city {
            count(d, city, -1)?;
        }
        Ok(Output::Null)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use duality::domain::write::{MemorySource, Plan};
    use serde_json::json;

    fn new(name: &str, city: Option<&str>) -> NewPerson {
        NewPerson {
            name: name.into(),
            city: city.map(Into::into),
        }
    }

    fn event(plan: &Plan, view: View) -> Option<Value> {
        plan.changes
            .iter()
            .find(|c| c.view == view)
            .map(|c| c.patch.clone())
    }

    /// reference sequence (README, "What it serves"), row by row, on the pure write path.
    #[test]
    fn the_reference_sequence_produces_the_specified_views_and_events() {
        let mut db = MemorySource::default();
        // (write, persons view after, locations view after, events)
        type Row = (Write, Value, Value, Option<Value>, Option<Value>);
        let rows: Vec<Row> = vec![
            (
                create(new("Ann", Some("Rome"))),
                json!({"1":{"name":"Ann","city":"Rome"}}),
                json!({"Rome":{"total":1}}),
                Some(json!({"1":{"name":"Ann","city":"Rome"}})),
                Some(json!({"Rome":{"total":1}})),
            ),
            (
                create(new("Bob", None)),
                json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob"}}),
                json!({"Rome":{"total":1}}),
                Some(json!({"2":{"name":"Bob"}})),
                None,
            ),
            (
                patch(2, PersonPatch::parse(&json!({"city":"Rome"})).unwrap()),
                json!({"1":{"name":"Ann","city":"Rome"},"2":{"name":"Bob","city":"Rome"}}),
                json!({"Rome":{"total":2}}),
                Some(json!({"2":{"city":"Rome"}})),
                Some(json!({"Rome":{"total":2}})),
            ),
            (
                patch(1, PersonPatch::parse(&json!({"city":null})).unwrap()),
                json!({"1":{"name":"Ann"},"2":{"name":"Bob","city":"Rome"}}),
                json!({"Rome":{"total":1}}),
                Some(json!({"1":{"city":null}})),
                Some(json!({"Rome":{"total":1}})),
            ),
            (
                delete(2),
                json!({"1":{"name":"Ann"}}),
                json!({}),
                Some(json!({"2":null})),
                Some(json!({"Rome":null})),
            ),
        ];
        for (i, (write, persons, locations, p_event, l_event)) in rows.into_iter().enumerate() {
            let (_, plan) = db.run(&write).unwrap();
            assert_eq!(db.view(PERSONS), persons, "row {}", i + 1);
            assert_eq!(db.view(LOCATIONS), locations, "row {}", i + 1);
            assert_eq!(event(&plan, PERSONS), p_event, "row {}", i + 1);
            assert_eq!(event(&plan, LOCATIONS), l_event, "row {}", i + 1);
        }
        assert_eq!(db.revisions.get(&PERSONS), Some(&5));
        assert_eq!(db.revisions.get(&LOCATIONS), Some(&4));
    }

    #[test]
    fn moving_the_only_person_of_a_city_is_one_location_event() {
        let mut db = MemorySource::default();
        db.run(&create(new("Ann", Some("Paris")))).unwrap();
        let (_, plan) = db
            .run(&patch(
                1,
                PersonPatch::parse(&json!({"city":"Oslo"})).unwrap(),
            ))
            .unwrap();
        assert_eq!(
            event(&plan, LOCATIONS),
            Some(json!({"Paris":null,"Oslo":{"total":1}}))
        );
    }

    #[test]
    fn an_empty_or_unchanging_patch_emits_nothing() {
        let mut db = MemorySource::default();
        db.run(&create(new("Ann", Some("Rome")))).unwrap();
        for body in [json!({}), json!({"name":"Ann"}), json!({"city":"Rome"})] {
            let (out, plan) = db
                .run(&patch(1, PersonPatch::parse(&body).unwrap()))
                .unwrap();
            assert!(plan.changes.is_empty(), "{body}");
            assert_eq!(out, json!({"id":1,"name":"Ann","city":"Rome"}));
            assert_eq!(plan.revision(PERSONS), Some(1));
        }
    }

    #[test]
    fn ids_are_not_reused_after_a_delete() {
        let mut db = MemorySource::default();
        db.run(&create(new("Ann", None))).unwrap();
        db.run(&delete(1)).unwrap();
        let (out, _) = db.run(&create(new("Bob", None))).unwrap();
        assert_eq!(out["id"], json!(2));
    }

    #[test]
    fn unknown_persons_are_not_found() {
        let mut db = MemorySource::default();
        assert!(matches!(db.run(&delete(7)), Err(Error::NotFound(_))));
        assert!(matches!(
            db.run(&patch(7, PersonPatch::default())),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn bad_patches_and_names_are_refused() {
        for body in [
            json!({"name": null}),
            json!({"name": ""}),
            json!({"name": "  "}),
            json!({"name": 3}),
            json!({"city": 3}),
            json!({"city": ""}),
            json!({"age": 3}),
            json!([1]),
            json!("x"),
        ] {
            assert!(
                matches!(PersonPatch::parse(&body), Err(Error::Invalid(_))),
                "{body}"
            );
        }
        assert!(new("", None).validate().is_err());
        assert!(new("Ann", Some("")).validate().is_err());
    }

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("12"), Ok(12));
        for raw in ["0", "-1", "abc", "1.5", "", "99999999999999999999999"] {
            assert!(parse_id(raw).is_err(), "{raw}");
        }
    }
}
