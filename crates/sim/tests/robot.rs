//! A whole small robot stepped the way the simulated devices will step it: the battery
//! solved under the drivetrain's load, the drivetrain moved, the walls applied, and the
//! sensors read from their mounts.

use pitcrew_sim::drivetrain::Chassis;
use pitcrew_sim::field::{Tag, Tape, TAPE_REFLECTANCE};
use pitcrew_sim::{Battery, DcMotor, Drive, Drivetrain, Encoder, Field, Gearbox, Pose};

const RADIUS: f64 = 0.2;

struct Robot {
    drivetrain: Drivetrain,
    battery: Battery,
    field: Field,
    encoder: Encoder,
    battery_v: f64,
}

impl Robot {
    fn new(seed: u64) -> Robot {
        let g = Gearbox::new(DcMotor::small_12v(), 1, 30.0).unwrap();
        let chassis = Chassis {
            wheel_radius: 0.05,
            track_width: 0.3,
            mass: 5.0,
            moment: 0.15,
        };
        let start = Pose {
            x: 0.5,
            y: 1.0,
            heading: 0.0,
        };
        let mut field = Field::new(4.0, 3.0).unwrap();
        field
            .add_tape(Tape {
                a: (0.0, 1.0),
                b: (4.0, 1.0),
                width: 0.05,
            })
            .unwrap();
        field
            .add_tag(Tag {
                at: (2.0, 1.0),
                radius: 0.05,
                id: 7,
            })
            .unwrap();
        Robot {
            drivetrain: Drivetrain::new(g, g, chassis, start).unwrap(),
            battery: Battery::lipo_3s(),
            field,
            encoder: Encoder::new(1440.0, 0.5, seed).unwrap(),
            battery_v: 12.6,
        }
    }

    /// One 1 ms step: returns the left encoder's count.
    fn step(&mut self, left: Drive, right: Drive) -> f64 {
        self.battery_v = self
            .battery
            .voltage_under(&self.drivetrain.loads(left, right));
        self.drivetrain.step(left, right, self.battery_v, 1e-3);
        let mut pose = self.drivetrain.pose();
        if self.field.confine(&mut pose, RADIUS) {
            self.drivetrain.place(pose);
        }
        self.encoder.count(self.drivetrain.wheel_angles()[0])
    }
}

#[test]
fn driving_forward_sags_the_battery_follows_the_tape_and_stops_at_the_wall() {
    let mut r = Robot::new(1);
    let mut lowest_v = f64::MAX;
    let mut tags = Vec::new();
    let mut on_tape = true;
    for _ in 0..8000 {
        r.step(Drive::Duty(0.6), Drive::Duty(0.6));
        lowest_v = lowest_v.min(r.battery_v);
        let p = r.drivetrain.pose();
        on_tape &= r.field.reflectance(p.at(0.1, 0.0)) == TAPE_REFLECTANCE;
        tags.extend(r.field.tag_at(p.at(0.0, 0.0)));
    }
    assert!(
        lowest_v < 12.6 - 0.05,
        "starting two motors sags the pack: {lowest_v}"
    );
    assert!(on_tape, "the centre sensor stayed over the straight tape");
    assert!(tags.contains(&7), "the reader passed over the tag");
    let p = r.drivetrain.pose();
    assert!(
        (p.x - (4.0 - RADIUS)).abs() < 1e-9,
        "held at the wall: {p:?}"
    );
    assert!(
        r.field.wall_distance(p.at(RADIUS, 0.0)).abs() < 1e-9,
        "a limit switch on the front edge is pressed"
    );
    assert!(
        r.drivetrain.currents()[0] > 0.5 * DcMotor::small_12v().stall_current(),
        "pushing against the wall, the motors stall: {:?}",
        r.drivetrain.currents()
    );
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let run = |seed| {
        let mut r = Robot::new(seed);
        let mut out: Vec<f64> = (0..3000)
            .map(|i| {
                let turn = if i < 1500 { 0.2 } else { -0.3 };
                r.step(Drive::Duty(0.5 - turn), Drive::Duty(0.5 + turn))
            })
            .collect();
        out.extend([r.drivetrain.pose().x, r.drivetrain.pose().heading]);
        out
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3), run(4), "the encoder noise follows the seed");
}
