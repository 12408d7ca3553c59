//! What the field view shows of a simulated robot: the field's layout and the robot's pose,
//! as `sim-service` answers them, checked before they reach a page (a field of finite,
//! positive size with at most [`MAX_FIELD_ITEMS`] tape lines and as many tags, a pose of
//! finite numbers). The data alone: [`crate::sim`] polls for it and the feed carries it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Tape lines (and, apart, tags) kept of a field: the field goes into every page's first
/// frame, so an answer listing more keeps only the first ones (an event field has tens).
pub const MAX_FIELD_ITEMS: usize = 256;

/// A simulated field as the page draws it (metres, from the field's corner, x along its
/// length), checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    /// Width and height.
    pub size: [f64; 2],
    /// Tape lines on the floor.
    #[serde(default)]
    pub tape: Vec<Tape>,
    /// RFID tags under it.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The robot's footprint radius, when it has a drivetrain.
    #[serde(default)]
    pub radius: Option<f64>,
}

/// A straight piece of tape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tape {
    /// One end.
    pub from: [f64; 2],
    /// The other end.
    pub to: [f64; 2],
    /// Its width.
    pub width: f64,
}

/// An RFID tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Where it is.
    pub at: [f64; 2],
    /// The id it reports.
    pub id: u64,
    /// Its read range.
    pub radius: f64,
}

/// The robot's pose: `x`, `y` (m) and `heading` (rad, counter-clockwise from x).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Metres along the field's length.
    pub x: f64,
    /// Metres across it.
    pub y: f64,
    /// Radians from the x axis, counter-clockwise.
    pub heading: f64,
}

/// What `sim-service.state` answers that the view uses.
#[derive(Deserialize)]
struct State {
    time: f64,
    #[serde(flatten)]
    pose: Pose,
}

/// Why no field or pose came from the service.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    /// No simulation answered (none runs, or it did not answer in time).
    #[error("sim-service.{method} did not answer: {message}")]
    NoAnswer {
        /// The method called.
        method: &'static str,
        /// The RPC error's message.
        message: String,
    },
    /// It answered something the view cannot draw.
    #[error("sim-service.{method} answered what is not a {what}: {answer}")]
    Malformed {
        /// The method called.
        method: &'static str,
        /// What it should have answered.
        what: &'static str,
        /// The answer (shortened).
        answer: String,
    },
}

impl Field {
    /// Checks a `sim-service.field` answer; keeps the first [`MAX_FIELD_ITEMS`] tape lines
    /// and tags.
    ///
    /// # Errors
    /// [`SimError::Malformed`] for an answer that is not a field of finite, positive size
    /// with finite points.
    pub fn parse(answer: Value) -> Result<Field, SimError> {
        let malformed = |answer: &Value| SimError::Malformed {
            method: "field",
            what: "field",
            answer: shorten(answer),
        };
        let Ok(mut field) = Field::deserialize(&answer) else {
            return Err(malformed(&answer));
        };
        field.tape.truncate(MAX_FIELD_ITEMS);
        field.tags.truncate(MAX_FIELD_ITEMS);
        let positive = |v: f64| v.is_finite() && v > 0.0;
        let finite = |p: &[f64; 2]| p.iter().all(|v| v.is_finite());
        let valid = field.size.iter().all(|v| positive(*v))
            && field.radius.is_none_or(positive)
            && field
                .tape
                .iter()
                .all(|t| finite(&t.from) && finite(&t.to) && positive(t.width))
            && field
                .tags
                .iter()
                .all(|t| finite(&t.at) && positive(t.radius));
        if valid {
            Ok(field)
        } else {
            Err(malformed(&answer))
        }
    }
}

/// Checks a `sim-service.state` answer: the simulation's time (s) and the robot's pose,
/// rounded to a tenth of a millimetre and of a milliradian (finer than a page draws, and
/// a robot at rest sends nothing).
///
/// # Errors
/// [`SimError::Malformed`] for an answer without finite `time`, `x`, `y` and `heading`.
pub fn parse_state(answer: &Value) -> Result<(f64, Pose), SimError> {
    let round = |v: f64| (v * 1e4).round() / 1e4;
    match State::deserialize(answer) {
        Ok(s)
            if [s.time, s.pose.x, s.pose.y, s.pose.heading]
                .iter()
                .all(|v| v.is_finite()) =>
        {
            let p = s.pose;
            Ok((
                s.time,
                Pose {
                    x: round(p.x),
                    y: round(p.y),
                    heading: round(p.heading),
                },
            ))
        }
        _ => Err(SimError::Malformed {
            method: "state",
            what: "state with a finite time and pose",
            answer: shorten(answer),
        }),
    }
}

/// An answer for a log line: at most 200 characters of it.
fn shorten(answer: &Value) -> String {
    let text = answer.to_string();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn example() -> Value {
        json!({
            "size": [4.0, 3.0],
            "tape": [{"from": [0.3, 1.5], "to": [3.7, 1.5], "width": 0.05}],
            "tags": [{"at": [2.0, 1.5], "id": 1001, "radius": 0.05}],
            "radius": 0.2,
        })
    }

    #[test]
    fn a_field_answer_is_checked_and_kept_as_it_came() {
        let field = Field::parse(example()).unwrap();
        assert_eq!(field.size, [4.0, 3.0]);
        assert_eq!(field.tags[0].id, 1001);
        assert_eq!(serde_json::to_value(&field).unwrap(), example());
        let mut bare = json!({"size": [1, 2]});
        let f = Field::parse(bare.take()).unwrap();
        assert!(f.tape.is_empty() && f.tags.is_empty() && f.radius.is_none());
    }

    #[test]
    fn a_malformed_field_is_refused_not_drawn() {
        for (key, bad) in [
            ("size", json!([4.0])),
            ("size", json!([4.0, 0.0])),
            ("size", json!([4.0, -3.0])),
            ("size", json!("big")),
            (
                "tape",
                json!([{"from": [0, 0], "to": [1, null], "width": 0.05}]),
            ),
            ("tape", json!([{"from": [0, 0], "to": [1, 1], "width": 0}])),
            ("tags", json!([{"at": [0, 0], "id": -1, "radius": 0.05}])),
            ("radius", json!(-0.2)),
        ] {
            let mut answer = example();
            answer[key] = bad.clone();
            let e = Field::parse(answer).unwrap_err();
            assert!(
                matches!(
                    e,
                    SimError::Malformed {
                        method: "field",
                        ..
                    }
                ),
                "{key}: {bad} gave {e:?}"
            );
        }
        assert!(Field::parse(json!(null)).is_err());
        assert!(Field::parse(json!([1, 2])).is_err());
    }

    #[test]
    fn a_field_keeps_at_most_its_bound_of_tape_and_tags() {
        let mut answer = example();
        answer["tape"] = Value::Array(vec![answer["tape"][0].clone(); 10_000]);
        answer["tags"] = Value::Array(vec![answer["tags"][0].clone(); 10_000]);
        let field = Field::parse(answer).unwrap();
        assert_eq!(field.tape.len(), MAX_FIELD_ITEMS);
        assert_eq!(field.tags.len(), MAX_FIELD_ITEMS);
    }

    #[test]
    fn a_state_gives_the_time_and_a_rounded_pose() {
        let state = json!({"time": 1.5, "x": 2.000_004, "y": 1.0, "heading": -0.123_456,
                           "battery_v": 12.1, "motors": []});
        let (time, pose) = parse_state(&state).unwrap();
        assert_eq!(time, 1.5);
        assert_eq!(
            pose,
            Pose {
                x: 2.0,
                y: 1.0,
                heading: -0.1235
            }
        );
        for bad in [
            json!({"time": 1.5, "x": 2.0, "y": 1.0}),
            json!({"time": 1.5, "x": 2.0, "y": null, "heading": 0.0}),
            json!({"time": "soon", "x": 2.0, "y": 1.0, "heading": 0.0}),
            json!("state"),
        ] {
            assert!(parse_state(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_long_answer_is_shortened_for_the_log() {
        let long = Value::String("é".repeat(1000));
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 201);
        assert_eq!(shorten(&json!(1)), "1");
    }
}
