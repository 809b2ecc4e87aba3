//! A simulated neuronal culture on a multi-electrode array (SpikingGrid, §10 of
//! `shared/docs/seeds-lagani-fasthebb-spikinggrid.md`): the configuration, the geometry, and the
//! connectivity built once from a seed.
//!
//! Units: the culture is 5/3 x 1 units (1 unit = 3 mm), neurons at uniform random positions;
//! electrode (row r < 6, column k < 10) sits at ((k + ½)·(5/3)/10, (r + ½)/6), index 10·r + k.
//! Each connection's weights are |N(0,1)|·exp(−d²/2σ²), entries below `prune` are dropped for
//! good (the masks), and each neuron's incoming Σ|w| is normalised to the connection's strength.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use serde::{Deserialize, Serialize};

use crate::error::{HebbError, Result};

/// Culture width / height in units of 3 mm: 5 mm x 3 mm.
pub const WIDTH: f64 = 5.0 / 3.0;
pub const HEIGHT: f64 = 1.0;
pub const ELECTRODE_ROWS: usize = 6;
pub const ELECTRODE_COLS: usize = 10;
pub const ELECTRODES: usize = ELECTRODE_ROWS * ELECTRODE_COLS;
/// The largest culture a recipe may ask for: W_E alone is 4·n² bytes (4.3 GB here).
pub const MAX_NEURONS: usize = 32_768;
/// Marks an empty ELL slot.
pub const NONE: u32 = u32::MAX;

/// The culture and its dynamics. Defaults are the biologically calibrated culture of 78 x 130
/// neurons (`mnist01_10000n_bio`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CultureConfig {
    /// Neuron count = rows · cols (the positions are uniform random; the grid only counts).
    pub rows: usize,
    pub cols: usize,
    /// Membrane time constant, ms.
    pub tau_m: f64,
    pub rest: f64,
    pub thresh: f64,
    pub reset: f64,
    /// Refractory period, ms.
    pub refrac: u32,
    /// Lower bound of the membrane potential; `-inf` for none (the task-tuned cultures).
    pub lower_bound: f64,
    /// STDP trace time constant, ms.
    pub tau_trace: f64,
    /// Gaussian widths of the connectivity, in units (1 unit = 3 mm).
    pub sigma_in: f64,
    pub sigma_exc: f64,
    pub sigma_inh: f64,
    /// Incoming Σ|w| per neuron of each connection.
    pub input_strength: f64,
    pub exc_strength: f64,
    pub inh_strength: f64,
    /// Weights below this are dropped for good.
    pub prune: f64,
    /// STDP: A⁻ (on a presynaptic spike) and A⁺ (on a postsynaptic spike).
    pub a_minus: f64,
    pub a_plus: f64,
    /// Simulation step, ms.
    pub dt: f64,
}

impl Default for CultureConfig {
    fn default() -> Self {
        Self {
            rows: 78,
            cols: 130,
            tau_m: 50.0,
            rest: 0.5,
            thresh: 1.0,
            reset: 0.5,
            refrac: 5,
            lower_bound: 0.0,
            tau_trace: 20.0,
            sigma_in: 0.1,
            sigma_exc: 0.4,
            sigma_inh: 0.05,
            input_strength: 1.0,
            exc_strength: 1.0,
            inh_strength: 10.0,
            prune: 1e-3,
            a_minus: 1e-4,
            a_plus: 1e-2,
            dt: 1.0,
        }
    }
}

impl CultureConfig {
    pub fn neurons(&self) -> usize {
        self.rows * self.cols
    }

    pub fn decay_m(&self) -> f64 {
        (-self.dt / self.tau_m).exp()
    }

    pub fn decay_trace(&self) -> f64 {
        (-self.dt / self.tau_trace).exp()
    }

    /// Refractory period in steps.
    pub fn refrac_steps(&self) -> u32 {
        (self.refrac as f64 / self.dt).round() as u32
    }

    pub fn validate(&self, source: &str) -> Result<()> {
        let bad = |field: &str, why: &str| {
            Err(HebbError::Format {
                path: source.into(),
                message: format!("culture.{field}: {why}"),
            })
        };
        if self.neurons() == 0 || self.neurons() > MAX_NEURONS {
            return bad(
                "rows/cols",
                &format!(
                    "the culture needs 1..={MAX_NEURONS} neurons (got {} x {}); its dense \
                     excitatory matrix takes 4·n² bytes",
                    self.rows, self.cols
                ),
            );
        }
        for (field, v) in [
            ("rest", self.rest),
            ("thresh", self.thresh),
            ("reset", self.reset),
        ] {
            if !v.is_finite() {
                return bad(field, &format!("must be a finite number (got {v})"));
            }
        }
        for (field, v) in [
            ("tau_m", self.tau_m),
            ("tau_trace", self.tau_trace),
            ("sigma_in", self.sigma_in),
            ("sigma_exc", self.sigma_exc),
            ("sigma_inh", self.sigma_inh),
            ("dt", self.dt),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, &format!("must be a positive number (got {v})"));
            }
        }
        for (field, v) in [
            ("input_strength", self.input_strength),
            ("exc_strength", self.exc_strength),
            ("inh_strength", self.inh_strength),
            ("prune", self.prune),
            ("a_minus", self.a_minus),
            ("a_plus", self.a_plus),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(field, &format!("must be ≥ 0 (got {v})"));
            }
        }
        if self.lower_bound.is_nan() || self.lower_bound >= self.thresh {
            return bad("lower_bound", "a number below thresh, or -inf for none");
        }
        if self.thresh <= self.reset {
            return bad("thresh", "must be above reset");
        }
        Ok(())
    }
}

/// A connection in ELL layout by postsynaptic neuron: row i holds `width` presynaptic indices
/// in ascending order (padded with NONE) and their weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Ell {
    pub width: usize,
    pub index: Vec<u32>,
    pub weight: Vec<f32>,
}

impl Ell {
    pub fn from_rows(rows: Vec<Vec<(u32, f64)>>) -> Ell {
        let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut index = vec![NONE; rows.len() * width];
        let mut weight = vec![0.0f32; rows.len() * width];
        for (i, row) in rows.iter().enumerate() {
            for (j, &(pre, w)) in row.iter().enumerate() {
                index[i * width + j] = pre;
                weight[i * width + j] = w as f32;
            }
        }
        Ell {
            width,
            index,
            weight,
        }
    }

    /// Stored synapses (non-empty slots).
    pub fn synapses(&self) -> usize {
        self.index.iter().filter(|&&i| i != NONE).count()
    }
}

/// A culture built from a seed: positions, the three connections, and the electrode cell of
/// every neuron.
#[derive(Clone, Debug)]
pub struct Culture {
    pub config: CultureConfig,
    /// (x, y) per neuron, in units.
    pub positions: Vec<(f64, f64)>,
    /// Electrodes → neurons.
    pub input: Ell,
    /// Inhibitory relays Z (one per neuron) → neurons; presynaptic index = the relayed neuron,
    /// never the postsynaptic neuron itself.
    pub inhibitory: Ell,
    /// Excitatory neuron → neuron, dense by presynaptic neuron: exc[pre·n + post], −1 where
    /// pruned and on the diagonal.
    pub exc: Vec<f32>,
}

/// The electrode centre of electrode index e.
pub fn electrode_centre(e: usize) -> (f64, f64) {
    let (r, k) = (e / ELECTRODE_COLS, e % ELECTRODE_COLS);
    (
        (k as f64 + 0.5) * WIDTH / ELECTRODE_COLS as f64,
        (r as f64 + 0.5) * HEIGHT / ELECTRODE_ROWS as f64,
    )
}

/// The electrode cell (index) a position lies in.
pub fn electrode_cell((x, y): (f64, f64)) -> usize {
    let k = ((x / WIDTH * ELECTRODE_COLS as f64) as usize).min(ELECTRODE_COLS - 1);
    let r = ((y / HEIGHT * ELECTRODE_ROWS as f64) as usize).min(ELECTRODE_ROWS - 1);
    r * ELECTRODE_COLS + k
}

impl Culture {
    /// Draws positions and weights from `seed` (ChaCha8): positions first, then the input,
    /// excitatory and inhibitory weights, each post neuron's presynaptic partners in order.
    pub fn build(config: &CultureConfig, seed: u64) -> Culture {
        let n = config.neurons();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ux = Uniform::new(0.0, WIDTH).expect("width > 0");
        let uy = Uniform::new(0.0, HEIGHT).expect("height > 0");
        let positions: Vec<(f64, f64)> = (0..n)
            .map(|_| (ux.sample(&mut rng), uy.sample(&mut rng)))
            .collect();
        let gauss = |a: (f64, f64), b: (f64, f64), sigma: f64| {
            let d2 = (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2);
            (-d2 / (2.0 * sigma * sigma)).exp()
        };
        let mut draw = |g: f64| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z.abs() * g
        };
        // Incoming rows, pruned, then normalised to Σ|w| = strength.
        let normalise = |row: &mut Vec<(u32, f64)>, strength: f64| {
            let sum: f64 = row.iter().map(|(_, w)| w.abs()).sum();
            if sum > 0.0 {
                for (_, w) in row.iter_mut() {
                    *w *= strength / sum;
                }
            }
        };
        let mut input_rows = Vec::with_capacity(n);
        for &pos in &positions {
            let mut row = Vec::new();
            for e in 0..ELECTRODES {
                let w = draw(gauss(electrode_centre(e), pos, config.sigma_in));
                if w >= config.prune {
                    row.push((e as u32, w));
                }
            }
            normalise(&mut row, config.input_strength);
            input_rows.push(row);
        }
        // Dense by presynaptic neuron, written one postsynaptic column at a time.
        let mut exc = vec![-1.0f32; n * n];
        let mut row = Vec::with_capacity(n);
        for post in 0..n {
            row.clear();
            for pre in 0..n {
                if pre == post {
                    continue;
                }
                let w = draw(gauss(positions[pre], positions[post], config.sigma_exc));
                if w >= config.prune {
                    row.push((pre as u32, w));
                }
            }
            normalise(&mut row, config.exc_strength);
            for &(pre, w) in &row {
                exc[pre as usize * n + post] = w as f32;
            }
        }
        // No relay inhibits its own neuron: SpikingGrid zeroes and masks that diagonal (the
        // self-inhibition would always arrive inside the refractory period, wasting a share of
        // the row's budget Σ|w| = inh_strength).
        let mut inh_rows = Vec::with_capacity(n);
        for post in 0..n {
            let mut row = Vec::new();
            for pre in 0..n {
                if pre == post {
                    continue;
                }
                let w = draw(gauss(positions[pre], positions[post], config.sigma_inh));
                if w >= config.prune {
                    row.push((pre as u32, -w));
                }
            }
            normalise(&mut row, config.inh_strength);
            inh_rows.push(row);
        }
        Culture {
            config: config.clone(),
            positions,
            input: Ell::from_rows(input_rows),
            inhibitory: Ell::from_rows(inh_rows),
            exc,
        }
    }

    pub fn neurons(&self) -> usize {
        self.positions.len()
    }

    /// Stored excitatory synapses.
    pub fn exc_synapses(&self) -> usize {
        self.exc.iter().filter(|&&w| w >= 0.0).count()
    }
}
