//! A battery with internal resistance: its voltage sags while the motors draw current.
//!
//! The motors' current depends on the battery voltage and the voltage on their current.
//! Each motor group's draw is linear in the battery voltage ([`Load`]), so the loop is
//! solved exactly each step, not with a step of lag:
//! `V = V_oc − R·Σ(gᵢ·V − cᵢ)`, hence `V = (V_oc + R·Σcᵢ) / (1 + R·Σgᵢ)`.

use crate::motor::Load;
use crate::{non_negative, positive, ParamError};

/// A battery pack of `cells` cells in series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Battery {
    open_circuit_v: f64,
    resistance: f64,
    cells: u32,
}

impl Battery {
    /// A pack at `open_circuit_v` volts unloaded, with internal resistance `resistance` (Ω,
    /// wiring included) and `cells` cells (at least one).
    ///
    /// # Errors
    /// [`ParamError`] for a voltage that is not positive, a negative resistance or no cells.
    pub fn new(open_circuit_v: f64, resistance: f64, cells: u32) -> Result<Battery, ParamError> {
        if cells == 0 {
            return Err(ParamError {
                what: "cells",
                value: 0.0,
            });
        }
        Ok(Battery {
            open_circuit_v: positive("open_circuit_v", open_circuit_v)?,
            resistance: non_negative("resistance", resistance)?,
            cells,
        })
    }

    /// A charged 3-cell LiPo (12.6 V) with 20 mΩ of pack and wiring.
    pub fn lipo_3s() -> Battery {
        Battery {
            open_circuit_v: 12.6,
            resistance: 0.02,
            cells: 3,
        }
    }

    /// The terminal voltage while it supplies `current` amperes (negative: charging).
    pub fn voltage_at(&self, current: f64) -> f64 {
        (self.open_circuit_v - self.resistance * current).max(0.0)
    }

    /// The terminal voltage under `loads`, solved exactly.
    pub fn voltage_under(&self, loads: &[Load]) -> f64 {
        let g: f64 = loads.iter().map(|l| l.conductance).sum();
        let c: f64 = loads.iter().map(|l| l.offset).sum();
        ((self.open_circuit_v + self.resistance * c) / (1.0 + self.resistance * g)).max(0.0)
    }

    /// The number of cells.
    pub fn cells(&self) -> u32 {
        self.cells
    }

    /// Each cell's voltage at terminal voltage `voltage` (the cells share it equally).
    pub fn cell_voltage(&self, voltage: f64) -> f64 {
        voltage / f64::from(self.cells)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motor::{DcMotor, Drive, Gearbox};

    #[test]
    fn the_sag_is_current_times_resistance() {
        let b = Battery::lipo_3s();
        assert_eq!(b.voltage_at(0.0), 12.6);
        assert!((b.voltage_at(10.0) - (12.6 - 10.0 * 0.02)).abs() < 1e-12);
        assert!((b.cell_voltage(12.6) - 4.2).abs() < 1e-12);
    }

    #[test]
    fn the_voltage_under_stalled_motors_is_consistent_with_their_current() {
        // Two stalled motors at full duty: each draws V/R, and V = V_oc − R_b·ΣI.
        let b = Battery::lipo_3s();
        let g = Gearbox::new(DcMotor::small_12v(), 2, 10.0).unwrap();
        let load = g.load(0.0, Drive::Duty(1.0));
        let v = b.voltage_under(&[load]);
        let i = load.current(v);
        assert!(
            (v - b.voltage_at(i)).abs() < 1e-12,
            "{v} vs {}",
            b.voltage_at(i)
        );
        assert!(v < 12.6 && v > 12.0, "{v}");
        assert!((i - 2.0 * v / DcMotor::small_12v().resistance()).abs() < 1e-9);
    }

    #[test]
    fn nothing_driven_draws_nothing() {
        let b = Battery::lipo_3s();
        let g = Gearbox::new(DcMotor::small_12v(), 1, 1.0).unwrap();
        assert_eq!(
            b.voltage_under(&[g.load(100.0, Drive::Coast), g.load(5.0, Drive::Brake)]),
            12.6
        );
    }
}
