//! The gate's decision on a consumer's write, in one pure function (robot-state.md rules
//! 2, 5 and 6): [`route`] says which params of a write go to the device, which outputs are
//! held back, and which writes the emergency stop discards.
//!
//! Two threads act on it: a device's waker thread, when a consumer's write wakes it
//! (`outbound`), and the device's session, when an emergency stop takes the pending writes
//! (`Outbound::estop`, run on the session's task). Both ask here, so "is this write sent,
//! held or dropped?" has one answer, tested below for every state. The state the answer
//! depends on is read under the line's lock by both (see `outbound`), which is what orders
//! it against the safe values.

use pitcrew::robot::State;

/// What device sessions may do with their outputs (published by the gate on a watch
/// channel, from the robot state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Not enabled: outputs at their safe values; consumer writes to outputs are dropped.
    Safe,
    /// Enabled: consumer writes to outputs are forwarded and held for their lease.
    Driven,
    /// Emergency stop: nothing but DEV_DISABLE (the latch does the rest).
    Estopped,
}

impl Outputs {
    /// What the robot `state` lets outputs do.
    pub fn of(state: State) -> Outputs {
        match state {
            State::Autonomous | State::Teleop => Outputs::Driven,
            State::Disabled => Outputs::Safe,
            State::Estopped => Outputs::Estopped,
        }
    }
}

/// What becomes of a consumer's write: three disjoint bitmaps whose union is the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Route {
    /// Sent to the device now (outputs among them start or renew their lease).
    pub send: u64,
    /// Outputs held back because the robot is not enabled: never sent, and not applied
    /// later either (rule 2: on enable, outputs stay safe until written again).
    pub hold: u64,
    /// Discarded because the emergency stop is latched: nothing but DEV_DISABLE goes out.
    pub discard: u64,
}

/// Routes a write of params `bits` to a device whose outputs are `outputs` (the type's
/// output mask), with the robot's outputs in `state` and the emergency-stop latch
/// `latched` (engaged before the state says so: the latch is what an `estop` RPC sets
/// first).
pub fn route(bits: u64, outputs: u64, state: Outputs, latched: bool) -> Route {
    if latched || state == Outputs::Estopped {
        return Route {
            discard: bits,
            ..Route::default()
        };
    }
    match state {
        Outputs::Driven => Route {
            send: bits,
            ..Route::default()
        },
        // Other params (LEDs, PID gains) pass while disabled.
        Outputs::Safe | Outputs::Estopped => Route {
            send: bits & !outputs,
            hold: bits & outputs,
            ..Route::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUTS: u64 = 0b0000_0001_0000_0001; // duty_cycle_a and duty_cycle_b
    const STATES: [Outputs; 3] = [Outputs::Safe, Outputs::Driven, Outputs::Estopped];

    #[test]
    fn every_write_in_every_state_is_split_without_loss_or_overlap() {
        for bits in 0..=0xFFFFu64 {
            for state in STATES {
                for latched in [false, true] {
                    let r = route(bits, OUTPUTS, state, latched);
                    assert_eq!(r.send | r.hold | r.discard, bits, "{bits:#x} {state:?}");
                    assert_eq!(r.send & r.hold, 0);
                    assert_eq!(r.send & r.discard, 0);
                    assert_eq!(r.hold & r.discard, 0);
                    // The safety property: an output is sent only while driven and not
                    // stopped.
                    if r.send & OUTPUTS != 0 {
                        assert!(state == Outputs::Driven && !latched, "{bits:#x} {state:?}");
                    }
                    // Nothing at all is sent once the emergency stop is latched.
                    if latched || state == Outputs::Estopped {
                        assert_eq!(r.discard, bits);
                    }
                }
            }
        }
    }

    #[test]
    fn enabled_sends_all_disabled_holds_outputs_and_passes_the_rest_estop_discards() {
        let led = 0b10;
        let write = OUTPUTS | led;
        assert_eq!(route(write, OUTPUTS, Outputs::Driven, false).send, write);
        let disabled = route(write, OUTPUTS, Outputs::Safe, false);
        assert_eq!((disabled.send, disabled.hold), (led, OUTPUTS));
        let stopped = route(write, OUTPUTS, Outputs::Estopped, false);
        assert_eq!(stopped.discard, write);
        // The latch is engaged before the state follows: it alone discards.
        assert_eq!(route(write, OUTPUTS, Outputs::Driven, true).discard, write);
        assert_eq!(route(0, OUTPUTS, Outputs::Driven, false), Route::default());
    }

    #[test]
    fn the_robot_state_maps_to_what_outputs_may_do() {
        assert_eq!(Outputs::of(State::Teleop), Outputs::Driven);
        assert_eq!(Outputs::of(State::Autonomous), Outputs::Driven);
        assert_eq!(Outputs::of(State::Disabled), Outputs::Safe);
        assert_eq!(Outputs::of(State::Estopped), Outputs::Estopped);
    }
}
