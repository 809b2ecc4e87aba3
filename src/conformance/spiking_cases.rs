//! `hebb-spiking-case/1`: whole presentations of a small SpikingGrid culture, recorded by
//! running the authors' model (SpikingGrid `model.py` under bindsnet 0.2.6, in float64) and
//! replayed here on the float64 reference (`reference::spiking`) and on the GPU kernels
//! (`kernels::spiking`). The same initial weights and electrode spike trains go in; every
//! step's spikes of the n neurons, the potentials after the last step and the weights after
//! each presentation (STDP over its steps, then the renormalisation) are compared. The layout
//! is kernels-tests/cases/SPIKING-FORMAT.md.
//!
//! Tolerances:
//! - reference: spikes exact; potentials and weights `REFERENCE_TOL` (two float64
//!   implementations that sum in different orders).
//! - GPU (float32 weights, state and sums): spikes exact, which holds as long as no pre-reset
//!   potential of the reference comes within `GPU_MARGIN` of the threshold (f32 potentials
//!   drift from float64 by ≲ 1e-5 over a presentation; the margin is checked, and a case too
//!   close to the threshold is an error row, not a pass); potentials and weights `GPU_TOL`.

use std::path::Path;

use serde::Deserialize;

use crate::conformance::cases::{CaseRow, REFERENCE_TOL, error_row};
use crate::conformance::rel_err;
use crate::conformance::spiking::threshold_margin;
use crate::gpu::{GpuContext, Recorder};
use crate::kernels::spiking::{SpikingBuffers, SpikingParams, read_raw};
use crate::reference::spiking::RefSim;
use crate::spiking::culture::{Culture, CultureConfig, ELECTRODES, Ell, NONE};

pub const FORMAT: &str = "hebb-spiking-case/1";
pub const PRESET: &str = "spikinggrid/culture";
/// Potentials and weights of the float32 kernels against the authors' float64 numbers.
pub const GPU_TOL: f64 = 1e-4;
/// The closest a reference pre-reset potential may come to the threshold for the float32
/// spikes to be compared exactly.
pub const GPU_MARGIN: f64 = 1e-4;
/// The largest culture a case may hold (its dense matrices are n² each).
const MAX_CASE_NEURONS: usize = 1024;
const MAX_CASE_STEPS: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCulture {
    rows: usize,
    cols: usize,
    tau_m: f64,
    rest: f64,
    thresh: f64,
    reset: f64,
    refrac: u32,
    /// null: no lower bound.
    lower_bound: Option<f64>,
    tau_trace: f64,
    input_strength: f64,
    exc_strength: f64,
    inh_strength: f64,
    a_minus: f64,
    a_plus: f64,
    dt: f64,
}

/// The three connections, each dense [pre, post] row-major as bindsnet stores them: input
/// [60, n], excitatory and inhibitory [n, n].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeights<T> {
    input: Vec<T>,
    excitatory: Vec<T>,
    inhibitory: Vec<T>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpected {
    /// [steps, n], 0 or 1.
    spikes: Vec<u8>,
    /// [n], after the last step.
    v: Vec<f64>,
    weights: RawWeights<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPresentation {
    learning: bool,
    label: u8,
    /// [steps, 60], 0 or 1.
    trains: Vec<u8>,
    expected: RawExpected,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    format: String,
    name: String,
    source: serde_json::Value,
    culture: RawCulture,
    electrodes: usize,
    steps: usize,
    /// 1 where the synapse was pruned at build (the masks: held at 0 for good).
    pruned: RawWeights<u8>,
    initial: RawWeights<f64>,
    presentations: Vec<RawPresentation>,
}

/// What one replay produced for one presentation, in the case's layouts.
struct Replayed {
    spikes: Vec<f64>,
    v: Vec<f64>,
    weights: Vec<f64>,
}

/// A checked case.
struct SpikingCase {
    name: String,
    culture: Culture,
    steps: usize,
    /// The ELL and dense weights in float64, for the reference.
    ell_idx: Vec<u32>,
    ell_w: Vec<f64>,
    exc: Vec<f64>,
    presentations: Vec<RawPresentation>,
}

/// The case's `format` field, if the text is a JSON object that has one.
pub fn format_of(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        format: String,
    }
    serde_json::from_str::<Head>(text).ok().map(|h| h.format)
}

fn parse(text: &str, path: &Path) -> Result<SpikingCase, String> {
    let raw: RawCase = serde_json::from_str(text)
        .map_err(|e| format!("{}: not a {FORMAT} file: {e}", path.display()))?;
    let _ = &raw.source;
    if raw.format != FORMAT {
        return Err(format!("format is {:?}, expected {FORMAT:?}", raw.format));
    }
    let c = &raw.culture;
    let n = c.rows.saturating_mul(c.cols);
    if n == 0 || n > MAX_CASE_NEURONS {
        return Err(format!(
            "culture.rows x culture.cols = {} x {}: expected 1..={MAX_CASE_NEURONS} neurons",
            c.rows, c.cols
        ));
    }
    if raw.electrodes != ELECTRODES {
        return Err(format!(
            "electrodes is {}, expected {ELECTRODES}",
            raw.electrodes
        ));
    }
    if raw.steps == 0 || raw.steps > MAX_CASE_STEPS {
        return Err(format!(
            "steps is {}, expected 1..={MAX_CASE_STEPS}",
            raw.steps
        ));
    }
    let config = CultureConfig {
        rows: c.rows,
        cols: c.cols,
        tau_m: c.tau_m,
        rest: c.rest,
        thresh: c.thresh,
        reset: c.reset,
        refrac: c.refrac,
        lower_bound: c.lower_bound.unwrap_or(f64::NEG_INFINITY),
        tau_trace: c.tau_trace,
        input_strength: c.input_strength,
        exc_strength: c.exc_strength,
        inh_strength: c.inh_strength,
        a_minus: c.a_minus,
        a_plus: c.a_plus,
        dt: c.dt,
        ..CultureConfig::default()
    };
    config
        .validate(&path.display().to_string())
        .map_err(|e| e.to_string())?;
    let e = ELECTRODES;
    let sizes = |what: &str, input: usize, exc: usize, inh: usize| -> Result<(), String> {
        for (field, got, want) in [
            ("input", input, e * n),
            ("excitatory", exc, n * n),
            ("inhibitory", inh, n * n),
        ] {
            if got != want {
                return Err(format!(
                    "{what}.{field} holds {got} values, expected {want} ([pre, post] for {n} neurons)"
                ));
            }
        }
        Ok(())
    };
    let (p, w) = (&raw.pruned, &raw.initial);
    sizes(
        "pruned",
        p.input.len(),
        p.excitatory.len(),
        p.inhibitory.len(),
    )?;
    sizes(
        "initial",
        w.input.len(),
        w.excitatory.len(),
        w.inhibitory.len(),
    )?;
    for (k, pr) in raw.presentations.iter().enumerate() {
        let x = &pr.expected;
        let at = format!("presentations[{k}]");
        sizes(
            &format!("{at}.expected.weights"),
            x.weights.input.len(),
            x.weights.excitatory.len(),
            x.weights.inhibitory.len(),
        )?;
        for (field, got, want) in [
            ("trains", pr.trains.len(), raw.steps * e),
            ("expected.spikes", x.spikes.len(), raw.steps * n),
            ("expected.v", x.v.len(), n),
        ] {
            if got != want {
                return Err(format!("{at}.{field} holds {got} values, expected {want}"));
            }
        }
        if pr.trains.iter().chain(&x.spikes).any(|&s| s > 1) {
            return Err(format!("{at}: trains and spikes hold only 0 and 1"));
        }
    }
    if raw.presentations.is_empty() {
        return Err("presentations is empty".into());
    }
    // ELL rows by postsynaptic neuron, presynaptic indices ascending; W_E −1 where pruned.
    let ell_rows = |w: &[f64], mask: &[u8], pres: usize| -> Vec<Vec<(u32, f64)>> {
        (0..n)
            .map(|post| {
                (0..pres)
                    .filter(|&pre| mask[pre * n + post] == 0)
                    .map(|pre| (pre as u32, w[pre * n + post]))
                    .collect()
            })
            .collect()
    };
    let unpruned_ok = w
        .excitatory
        .iter()
        .zip(&p.excitatory)
        .all(|(&v, &m)| m != 0 || (v.is_finite() && v >= 0.0));
    if !unpruned_ok {
        return Err("initial.excitatory: unpruned weights must be finite and ≥ 0".into());
    }
    let exc: Vec<f64> = w
        .excitatory
        .iter()
        .zip(&p.excitatory)
        .map(|(&v, &m)| if m == 0 { v } else { -1.0 })
        .collect();
    let input = Ell::from_rows(ell_rows(&w.input, &p.input, e));
    let inhibitory = Ell::from_rows(ell_rows(&w.inhibitory, &p.inhibitory, n));
    // The same layout in float64 for the reference: each ELL slot's weight gathered from the
    // dense matrix (the Ells hold float32, as the GPU does).
    let gather = |ell: &Ell, dense: &[f64]| -> Vec<f64> {
        ell.index
            .iter()
            .enumerate()
            .map(|(slot, &pre)| match pre {
                NONE => 0.0,
                pre => dense[pre as usize * n + slot / ell.width],
            })
            .collect()
    };
    let mut ell_w = gather(&input, &w.input);
    ell_w.extend(gather(&inhibitory, &w.inhibitory));
    let mut ell_idx = input.index.clone();
    ell_idx.extend_from_slice(&inhibitory.index);
    let culture = Culture {
        config,
        positions: vec![(0.0, 0.0); n],
        input,
        inhibitory,
        exc: exc.iter().map(|&v| v as f32).collect(),
    };
    Ok(SpikingCase {
        name: raw.name,
        culture,
        steps: raw.steps,
        ell_idx,
        ell_w,
        exc,
        presentations: raw.presentations,
    })
}

impl SpikingCase {
    fn n(&self) -> usize {
        self.culture.neurons()
    }

    /// ELL (input, then inhibitory, each [n, width]) and W_E [pre, post] back to the case's
    /// dense [pre, post] layouts, 0 where pruned: input, excitatory, inhibitory.
    fn dense(&self, ell_w: &[f64], exc: &[f64]) -> Vec<f64> {
        let n = self.n();
        let (win, winh) = (self.culture.input.width, self.culture.inhibitory.width);
        let mut input = vec![0.0; ELECTRODES * n];
        let mut inh = vec![0.0; n * n];
        for post in 0..n {
            for j in 0..win {
                let pre = self.ell_idx[post * win + j];
                if pre != NONE {
                    input[pre as usize * n + post] = ell_w[post * win + j];
                }
            }
            for j in 0..winh {
                let pre = self.ell_idx[n * win + post * winh + j];
                if pre != NONE {
                    inh[pre as usize * n + post] = ell_w[n * win + post * winh + j];
                }
            }
        }
        let mut out = input;
        out.extend(exc.iter().map(|&v| v.max(0.0)));
        out.extend(inh);
        out
    }

    /// The float64 reference over every presentation, with the smallest distance of a
    /// pre-reset potential from the threshold.
    fn replay_reference(&self) -> (Vec<Replayed>, f64) {
        let n = self.n();
        // One culture, one batch element, W_E in one binding (the reference reads n and the
        // widths only).
        let p = SpikingParams::new(&self.culture, 1, 1, n, 0)
            .expect("a case holds at most MAX_CASE_NEURONS neurons, far inside u32");
        let mut sim = RefSim {
            p,
            cfg: self.culture.config.clone(),
            ell_idx: self.ell_idx.clone(),
            ell_w: self.ell_w.clone(),
            exc: self.exc.clone(),
            state: vec![0.0; 5 * n + 2 * ELECTRODES],
            spikes: vec![0; 4 * n + 2 * ELECTRODES + 1],
        };
        let mut margin = f64::INFINITY;
        let mut out = Vec::new();
        for pr in &self.presentations {
            sim.reset();
            let mut spikes = Vec::with_capacity(self.steps * n);
            for t in 0..self.steps {
                let row = &pr.trains[t * ELECTRODES..(t + 1) * ELECTRODES];
                let probs: Vec<f64> = row.iter().map(|&s| s as f64).collect();
                sim.set_electrode_probs(0, &probs);
                margin = margin.min(threshold_margin(&sim, t as u32, 0));
                sim.step(t as u32, 0, pr.learning);
                spikes.extend((0..n).map(|i| sim.spiked(t as u32, 0, i) as u8 as f64));
            }
            let v = (0..n).map(|i| sim.potential(0, i)).collect();
            if pr.learning {
                sim.renormalise();
            }
            let weights = self.dense(&sim.ell_w, &sim.exc);
            out.push(Replayed { spikes, v, weights });
        }
        (out, margin)
    }

    /// The GPU kernels over every presentation: one step per submission, its spikes read back.
    fn replay_gpu(&self, ctx: &GpuContext) -> crate::error::Result<Vec<Replayed>> {
        let n = self.n();
        let mut bufs = SpikingBuffers::new(ctx, &self.culture, 1, 1, 0)?;
        let mut out = Vec::new();
        for pr in &self.presentations {
            let mut rec = Recorder::new(ctx);
            bufs.reset_state(&mut rec)?;
            rec.submit();
            let trains: Vec<f32> = pr.trains.iter().map(|&s| s as f32).collect();
            bufs.write_spike_trains(ctx, &trains, self.steps)?;
            let mut spikes = Vec::with_capacity(self.steps * n);
            for t in 0..self.steps as u32 {
                let mut rec = Recorder::new(ctx);
                bufs.step(&mut rec, t, 0, pr.learning, false)?;
                rec.submit();
                spikes.extend(bufs.read_spikes(ctx, t, 0)?.iter().map(|&s| s as u8 as f64));
            }
            let (state, _) = read_raw(ctx, &bufs)?;
            let v = state[..n].iter().map(|&x| x as f64).collect();
            if pr.learning {
                let mut rec = Recorder::new(ctx);
                bufs.renormalise(&mut rec)?;
                rec.submit();
            }
            let (win, winh, exc) = bufs.read_weights(ctx)?;
            let ell: Vec<f64> = win.iter().chain(&winh).map(|&x| x as f64).collect();
            let exc: Vec<f64> = exc.iter().map(|&x| x as f64).collect();
            out.push(Replayed {
                spikes,
                v,
                weights: self.dense(&ell, &exc),
            });
        }
        Ok(out)
    }

    /// One row per presentation and tensor (spikes, v, weights).
    fn rows(&self, variant: &str, got: &[Replayed], tol: f64) -> Vec<CaseRow> {
        let mut rows = Vec::new();
        for (k, (g, pr)) in got.iter().zip(&self.presentations).enumerate() {
            let x = &pr.expected;
            let spikes: Vec<f64> = x.spikes.iter().map(|&s| s as f64).collect();
            let mut weights = x.weights.input.clone();
            weights.extend(&x.weights.excitatory);
            weights.extend(&x.weights.inhibitory);
            let kind = if pr.learning { "stdp" } else { "eval" };
            for (tensor, got, want, tol) in [
                ("spikes", &g.spikes, &spikes, 0.0),
                ("v", &g.v, &x.v, tol),
                ("weights", &g.weights, &weights, tol),
            ] {
                let e = rel_err(got, want);
                rows.push(CaseRow {
                    case: self.name.clone(),
                    preset: PRESET.into(),
                    variant: variant.into(),
                    tensor: format!("p{k} {kind} digit {} {tensor}", pr.label),
                    rel_err: e,
                    tol,
                    ok: e <= tol,
                    error: None,
                });
            }
        }
        rows
    }
}

/// The rows of one hebb-spiking-case/1 file (`text` read from `path`): the float64 reference,
/// and with a context the GPU kernels.
pub fn case_rows(ctx: Option<&GpuContext>, path: &Path, text: &str) -> Vec<CaseRow> {
    let case = match parse(text, path) {
        Ok(c) => c,
        Err(e) => {
            return vec![error_row(
                &path.display().to_string(),
                PRESET,
                "reference-f64",
                e,
            )];
        }
    };
    let (reference, margin) = case.replay_reference();
    let mut rows = case.rows("reference-f64", &reference, REFERENCE_TOL);
    if let Some(ctx) = ctx {
        if margin < GPU_MARGIN {
            rows.push(error_row(
                &case.name,
                PRESET,
                "gpu-f32",
                format!(
                    "a pre-reset potential comes within {margin:.1e} of the threshold (at least \
                     {GPU_MARGIN:.0e} is needed for float32 spikes to be compared exactly)"
                ),
            ));
        } else {
            match case.replay_gpu(ctx) {
                Ok(got) => rows.extend(case.rows("gpu-f32", &got, GPU_TOL)),
                Err(e) => rows.push(error_row(&case.name, PRESET, "gpu-f32", e.to_string())),
            }
        }
    }
    rows
}
