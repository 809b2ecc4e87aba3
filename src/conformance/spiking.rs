//! The spiking culture kernels against the float64 reference (`reference::spiking`): one step
//! from a random state (random membrane potentials, refractory counters, traces, spike
//! history and electrode probabilities) on ragged culture sizes and batch shapes, with and
//! without STDP, the dense baseline step, and the renormalisation.
//!
//! Tolerances and what is exact:
//! - Spikes, spike lists and counts: exact. The only float decision is v ≥ thresh; inputs are
//!   redrawn until no neuron's pre-reset potential lies within 1e-4 of the threshold (f32 sums
//!   of at most a few hundred terms of size ≤ 10 are off by ≲ 1e-5), so rounding cannot flip
//!   a spike. Electrode spikes compare the same f32 draw with the same f32 probability.
//! - Potentials and traces: one step of f32 arithmetic on inputs summed in f32 (the reference
//!   in f64): 1e-5 relative (‖got − want‖ / ‖want‖).
//! - Weights after STDP and after renormalisation: a few roundings per weight: 1e-5.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::conformance::{Row, derive_seed};
use crate::error::Result;
use crate::gpu::{GpuContext, Recorder};
use crate::kernels::spiking::{SpikingBuffers, read_raw, write_raw};
use crate::reference::spiking::RefSim;
use crate::spiking::culture::{Culture, CultureConfig, ELECTRODES};

pub const STATE_TOL: f64 = 1e-5;

/// Raw state, raw spikes, ELL weights and W_E after a GPU step.
type StepOutput = (Vec<f32>, Vec<u32>, Vec<f32>, Vec<f32>);
pub const WEIGHT_TOL: f64 = 1e-5;

/// A random but valid state for `bufs` at step t: spike history, lists consistent with it.
fn random_state(
    bufs: &SpikingBuffers,
    cfg: &CultureConfig,
    t: u32,
    rng: &mut ChaCha8Rng,
) -> (Vec<f32>, Vec<u32>) {
    let (b, n, e) = (bufs.batch(), bufs.params.n as usize, ELECTRODES);
    let mut state = vec![0.0f32; 5 * b * n + 2 * b * e];
    let mut spikes = vec![0u32; 4 * b * n + 2 * b * e + b];
    for k in 0..b * n {
        state[k] = rng.random_range(0.0..1.2); // v
        state[b * n + k] = rng.random_range(-1..=cfg.refrac_steps() as i32) as f32;
        state[2 * b * n + k] = rng.random_range(0.0..1.0); // xY
        state[3 * b * n + k] = rng.random_range(0.0..1.0); // xZ
        state[4 * b * n + k] = rng.random_range(0..5) as f32; // counts
    }
    for k in 0..b * e {
        state[5 * b * n + k] = rng.random_range(0.0..1.0); // xX
        state[5 * b * n + b * e + k] = rng.random_range(0.0..0.4); // p_e
    }
    // Y spikes of t−1 and t−2 (slot t % 3 is overwritten), X spikes of t−1.
    for back in 1..3u32 {
        let slot = ((t + 3 - back) % 3) as usize;
        for k in 0..b * n {
            spikes[slot * b * n + k] = rng.random_bool(0.2) as u32;
        }
    }
    let xslot = ((t + 1) % 2) as usize;
    for k in 0..b * e {
        spikes[3 * b * n + xslot * b * e + k] = rng.random_bool(0.3) as u32;
    }
    // Spike lists of t−1.
    let prev = ((t + 2) % 3) as usize;
    for bb in 0..b {
        let mut len = 0;
        for i in 0..n {
            if spikes[prev * b * n + bb * n + i] != 0 {
                spikes[3 * b * n + 2 * b * e + bb * n + len] = i as u32;
                len += 1;
            }
        }
        spikes[4 * b * n + 2 * b * e + bb] = len as u32;
    }
    (state, spikes)
}

/// The smallest |v − thresh| over the reference's pre-reset potentials of step t.
pub(crate) fn threshold_margin(sim: &RefSim, t: u32, sample_base: u32) -> f64 {
    let mut probe = RefSim {
        p: sim.p,
        cfg: CultureConfig {
            thresh: f64::INFINITY,
            lower_bound: f64::NEG_INFINITY,
            ..sim.cfg.clone()
        },
        ell_idx: sim.ell_idx.clone(),
        ell_w: sim.ell_w.clone(),
        exc: sim.exc.clone(),
        state: sim.state.clone(),
        spikes: sim.spikes.clone(),
    };
    probe.step(t, sample_base, false);
    let bn = sim.p.batch as usize * sim.p.n as usize;
    (0..bn)
        .map(|k| (probe.state[k] - sim.cfg.thresh).abs())
        .fold(f64::INFINITY, f64::min)
}

fn ref_from(bufs: &SpikingBuffers, culture: &Culture, state: &[f32], spikes: &[u32]) -> RefSim {
    let c = bufs.params.cultures as usize;
    let mut ell_idx = culture.input.index.clone();
    ell_idx.extend_from_slice(&culture.inhibitory.index);
    let mut ell_w: Vec<f64> = Vec::new();
    for _ in 0..c {
        ell_w.extend(culture.input.weight.iter().map(|&w| w as f64));
    }
    for _ in 0..c {
        ell_w.extend(culture.inhibitory.weight.iter().map(|&w| w as f64));
    }
    let mut exc = Vec::new();
    for _ in 0..c {
        exc.extend(culture.exc.iter().map(|&w| w as f64));
    }
    RefSim {
        p: bufs.params,
        cfg: culture.config.clone(),
        ell_idx,
        ell_w,
        exc,
        state: state.iter().map(|&v| v as f64).collect(),
        spikes: spikes.to_vec(),
    }
}

/// One case: culture rows x cols, C cultures, batch B (B == C when learning).
#[allow(clippy::too_many_arguments)]
fn check_case(
    ctx: &GpuContext,
    rows: usize,
    cols: usize,
    cultures: usize,
    batch: usize,
    learning: bool,
    dense: bool,
    base_seed: u64,
    index: u64,
) -> Vec<Row> {
    let n = rows * cols;
    let variant = format!(
        "C={cultures} B={batch}{}{}{}",
        if learning { " stdp" } else { "" },
        if dense { " dense" } else { "" },
        if cultures == 3 && n == 13 {
            " W_E in 4 bindings"
        } else {
            ""
        }
    );
    let shape = [("n", n), ("b", batch)];
    let seed = derive_seed(base_seed, 12_000 + index);
    let name = if dense { "lif_step_dense" } else { "lif_step" };
    let fail = |e: crate::HebbError| vec![Row::new(name, variant.clone(), &shape, seed).fail(e)];
    // Small cultures with a tuned-strength flavour, so inputs matter within one step.
    let cfg = CultureConfig {
        rows,
        cols,
        exc_strength: 3.0,
        inh_strength: 3.0,
        lower_bound: if index.is_multiple_of(2) {
            0.0
        } else {
            f64::NEG_INFINITY
        },
        rest: if index.is_multiple_of(2) { 0.5 } else { 0.0 },
        ..CultureConfig::default()
    };
    let culture = Culture::build(&cfg, seed);
    // Three cultures also run with W_E split over all four bindings (at most 10 rows each),
    // as large cultures are on adapters with small bindings.
    let chunk_rows = (cultures == 3 && n == 13).then_some(10);
    let made =
        SpikingBuffers::with_chunk_rows(ctx, &culture, cultures, batch, seed as u32, chunk_rows);
    let mut bufs = match made {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    if let Err(e) = bufs.set_batch(batch) {
        return fail(e);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let t = rng.random_range(0..6u32);
    let sample_base = rng.random_range(0..1000u32);
    // Redraw until no potential sits within 1e-4 of the threshold.
    let (state, spikes, mut sim) = loop {
        let (state, spikes) = random_state(&bufs, &cfg, t, &mut rng);
        let sim = ref_from(&bufs, &culture, &state, &spikes);
        if threshold_margin(&sim, t, sample_base) > 1e-4 {
            break (state, spikes, sim);
        }
    };
    let run = || -> Result<StepOutput> {
        write_raw(ctx, &bufs, &state, &spikes)?;
        let mut rec = Recorder::new(ctx);
        bufs.step(&mut rec, t, sample_base, learning, dense)?;
        rec.submit();
        let (st, sp) = read_raw(ctx, &bufs)?;
        let (win, winh, exc) = bufs.read_weights(ctx)?;
        let mut ell = win;
        ell.extend(winh);
        Ok((st, sp, ell, exc))
    };
    let (got_state, got_spikes, got_ell, got_exc) = match run() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    sim.step(t, sample_base, learning);
    let mut rows_out = Vec::new();
    let widen = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    rows_out.push(
        Row::new(name, format!("{variant} state"), &shape, seed).compare(
            &widen(&got_state),
            &sim.state,
            STATE_TOL,
        ),
    );
    // Spikes, lists and lengths, as exact 0/1 and index words.
    let as_f64 = |v: &[u32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    rows_out.push(
        Row::new(name, format!("{variant} spikes+lists"), &shape, seed).compare(
            &as_f64(&got_spikes),
            &as_f64(&sim.spikes),
            0.0,
        ),
    );
    if learning {
        let mut got = widen(&got_ell);
        got.extend(widen(&got_exc));
        let mut want = sim.ell_w.clone();
        want.extend(sim.exc.iter().copied());
        rows_out.push(
            Row::new("stdp_update", variant.clone(), &shape, seed).compare(&got, &want, WEIGHT_TOL),
        );
        // Then renormalise both.
        let renorm = || -> Result<(Vec<f32>, Vec<f32>)> {
            let mut rec = Recorder::new(ctx);
            bufs.renormalise(&mut rec)?;
            rec.submit();
            let (win, winh, exc) = bufs.read_weights(ctx)?;
            let mut ell = win;
            ell.extend(winh);
            Ok((ell, exc))
        };
        sim.renormalise();
        let row = Row::new("renormalise", variant.clone(), &shape, seed);
        rows_out.push(match renorm() {
            Ok((ell, exc)) => {
                let mut got = widen(&ell);
                got.extend(widen(&exc));
                let mut want = sim.ell_w.clone();
                want.extend(sim.exc.iter().copied());
                row.compare(&got, &want, WEIGHT_TOL)
            }
            Err(e) => row.fail(e),
        });
    }
    rows_out
}

/// Every case: ragged cultures (1, 7, 33, 65 and the 240-neuron 12 x 20), one or several
/// cultures and samples, STDP on and off, and the dense baseline step.
pub fn spiking_checks(ctx: &GpuContext, base_seed: u64) -> Vec<Row> {
    // (rows, cols, cultures, batch, learning, dense)
    let cases = [
        (1, 1, 1, 1, true, false),
        (1, 7, 1, 3, false, false),
        (3, 11, 2, 2, true, false),
        (5, 13, 1, 2, false, true),
        (5, 13, 3, 3, true, false),
        (12, 20, 1, 1, true, false),
        (12, 20, 1, 4, false, false),
        (12, 20, 1, 2, false, true),
        (1, 13, 3, 3, true, false),
    ];
    let mut rows = Vec::new();
    for (index, &(r, c, cultures, batch, learning, dense)) in cases.iter().enumerate() {
        rows.extend(check_case(
            ctx,
            r,
            c,
            cultures,
            batch,
            learning,
            dense,
            base_seed,
            index as u64,
        ));
    }
    rows
}
