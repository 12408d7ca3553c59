//! The field: walls around it, tape lines on the floor and RFID tags under it, and what the
//! robot's sensors see of them from their mounts.

use crate::drivetrain::Pose;
use crate::{positive, ParamError};

/// A straight piece of tape from `a` to `b`, `width` metres wide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tape {
    /// One end (m).
    pub a: (f64, f64),
    /// The other end (m).
    pub b: (f64, f64),
    /// Width (m).
    pub width: f64,
}

impl Tape {
    /// Distance from `p` to the tape's centre line.
    fn distance(&self, p: (f64, f64)) -> f64 {
        let (dx, dy) = (self.b.0 - self.a.0, self.b.1 - self.a.1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((p.0 - self.a.0) * dx + (p.1 - self.a.1) * dy) / len2).clamp(0.0, 1.0)
        };
        let (cx, cy) = (self.a.0 + t * dx, self.a.1 + t * dy);
        ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
    }
}

/// An RFID tag at `at`, read within `radius` metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tag {
    /// Position (m).
    pub at: (f64, f64),
    /// Read range (m).
    pub radius: f64,
    /// The id it reports.
    pub id: u32,
}

/// A rectangular field `width` × `height` metres with its corner at the origin, walled on
/// all four sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    width: f64,
    height: f64,
    tape: Vec<Tape>,
    tags: Vec<Tag>,
}

/// How bright the floor reads to a line sensor, and tape over it.
pub const FLOOR_REFLECTANCE: f64 = 0.0;
/// See [`FLOOR_REFLECTANCE`].
pub const TAPE_REFLECTANCE: f64 = 1.0;

impl Field {
    /// An empty field of `width` × `height` metres.
    ///
    /// # Errors
    /// [`ParamError`] for a size that is not positive.
    pub fn new(width: f64, height: f64) -> Result<Field, ParamError> {
        Ok(Field {
            width: positive("width", width)?,
            height: positive("height", height)?,
            tape: Vec::new(),
            tags: Vec::new(),
        })
    }

    /// Adds a tape line.
    ///
    /// # Errors
    /// [`ParamError`] for a width that is not positive.
    pub fn add_tape(&mut self, tape: Tape) -> Result<(), ParamError> {
        positive("tape width", tape.width)?;
        self.tape.push(tape);
        Ok(())
    }

    /// Adds an RFID tag.
    ///
    /// # Errors
    /// [`ParamError`] for a range that is not positive.
    pub fn add_tag(&mut self, tag: Tag) -> Result<(), ParamError> {
        positive("tag radius", tag.radius)?;
        self.tags.push(tag);
        Ok(())
    }

    /// Width and height (m).
    pub fn size(&self) -> (f64, f64) {
        (self.width, self.height)
    }

    /// The tape lines, in the order they were added (for drawing the field).
    pub fn tape(&self) -> &[Tape] {
        &self.tape
    }

    /// The RFID tags, in the order they were added (for drawing the field).
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// What a line sensor over `p` reads: [`TAPE_REFLECTANCE`] over tape, else the floor.
    pub fn reflectance(&self, p: (f64, f64)) -> f64 {
        if self.tape.iter().any(|t| t.distance(p) <= t.width / 2.0) {
            TAPE_REFLECTANCE
        } else {
            FLOOR_REFLECTANCE
        }
    }

    /// The tag an RFID reader at `p` reads (the nearest in range), if any.
    pub fn tag_at(&self, p: (f64, f64)) -> Option<u32> {
        self.tags
            .iter()
            .map(|t| (t, ((p.0 - t.at.0).powi(2) + (p.1 - t.at.1).powi(2)).sqrt()))
            .filter(|(t, d)| *d <= t.radius)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, _)| t.id)
    }

    /// Distance from `p` to the nearest wall: negative outside the field.
    pub fn wall_distance(&self, p: (f64, f64)) -> f64 {
        p.0.min(self.width - p.0).min(p.1).min(self.height - p.1)
    }

    /// Keeps a robot of `radius` metres inside the walls: moves `pose` back in if it went
    /// through one and says so (the caller then [halts](crate::Drivetrain::halt) it).
    pub fn confine(&self, pose: &mut Pose, radius: f64) -> bool {
        let r = radius.min(self.width / 2.0).min(self.height / 2.0);
        let x = pose.x.clamp(r, self.width - r);
        let y = pose.y.clamp(r, self.height - r);
        let hit = x != pose.x || y != pose.y;
        pose.x = x;
        pose.y = y;
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field() -> Field {
        let mut f = Field::new(4.0, 3.0).unwrap();
        f.add_tape(Tape {
            a: (0.5, 1.0),
            b: (3.5, 1.0),
            width: 0.05,
        })
        .unwrap();
        f.add_tag(Tag {
            at: (2.0, 2.0),
            radius: 0.05,
            id: 42,
        })
        .unwrap();
        f
    }

    #[test]
    fn line_sensors_see_the_tape_under_them() {
        let f = field();
        assert_eq!(f.reflectance((2.0, 1.0)), TAPE_REFLECTANCE);
        assert_eq!(f.reflectance((2.0, 1.024)), TAPE_REFLECTANCE);
        assert_eq!(f.reflectance((2.0, 1.03)), FLOOR_REFLECTANCE);
        assert_eq!(f.reflectance((3.6, 1.0)), FLOOR_REFLECTANCE, "past the end");
    }

    #[test]
    fn a_reader_over_a_tag_reads_its_id() {
        let f = field();
        assert_eq!(f.tag_at((2.03, 2.0)), Some(42));
        assert_eq!(f.tag_at((2.1, 2.0)), None);
    }

    #[test]
    fn walls_hold_the_robot_in() {
        let f = field();
        let mut p = Pose {
            x: 3.95,
            y: 1.0,
            heading: 0.0,
        };
        assert!(f.confine(&mut p, 0.2));
        assert!((p.x - 3.8).abs() < 1e-12);
        // A switch on the robot's front edge touches the wall.
        assert!(f.wall_distance(p.at(0.2, 0.0)).abs() < 1e-12);
        assert!(!f.confine(&mut p, 0.2));
        assert!(f.wall_distance((-0.1, 1.0)) < 0.0);
    }
}
