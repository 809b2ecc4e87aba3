//! `hebb bench spiking`: simulated milliseconds per wall-clock second and synaptic events per
//! second of a recipe's culture, for the event-driven step (spike lists) against the naive dense
//! step (every presynaptic neuron read each step), evaluating B samples at once, and for
//! training (one sample with STDP and the renormalisation).
//!
//! A synaptic event is one spike delivered over one synapse: each neuron spike counts its
//! excitatory and inhibitory out-degree, each electrode spike its input out-degree. Counts come
//! from the run itself (neuron spikes) and from the stimulus' expectation (electrode spikes).

use serde::Serialize;

use crate::bench::{BenchBudget, time_launch};
use crate::data::mnist::{self, Split};
use crate::error::{HebbError, Result};
use crate::gpu::{GpuContext, GpuTimer};
use crate::kernels::spiking::SpikingBuffers;
use crate::spiking::culture::{Culture, ELECTRODES};
use crate::spiking::recipe::SpikingRecipe;
use crate::spiking::task::{downscale, label_electrodes, stimulus};

#[derive(Clone, Debug, Serialize)]
pub struct SpikingBenchRow {
    pub recipe: String,
    pub mode: String,
    pub neurons: usize,
    pub batch: usize,
    pub steps: u32,
    pub median_s: f64,
    /// Simulated ms of every sample together per wall-clock second.
    pub simulated_ms_per_s: f64,
    pub synaptic_events_per_s: f64,
    pub speedup_vs_dense: f64,
    pub timer: String,
    pub adapter: String,
}

/// Times `steps` steps of `batch` MNIST test digits (0 and 1 alternately from `data`) on the
/// recipe's culture: event-driven, dense, and one training sample.
pub fn bench_spiking(
    ctx: &GpuContext,
    recipe: &SpikingRecipe,
    data: &std::path::Path,
    batch: usize,
    timer: &GpuTimer,
    budget: BenchBudget,
) -> Result<Vec<SpikingBenchRow>> {
    let culture = Culture::build(&recipe.culture, recipe.seed);
    let n = culture.neurons();
    let test = mnist::load_split(data, Split::Test).map_err(|e| HebbError::Format {
        path: data.into(),
        message: e.to_string(),
    })?;
    let labels = label_electrodes(recipe.task.classes.len()).expect("validated recipe");
    let digits: Vec<usize> = (0..test.count)
        .filter(|&i| recipe.task.classes.contains(&test.labels[i]))
        .take(batch)
        .collect();
    let batch = digits.len().max(1);
    let mut probs = Vec::with_capacity(batch * ELECTRODES);
    for &i in &digits {
        probs.extend(stimulus(
            &downscale(&test, i),
            None,
            &labels,
            recipe.task.rate_hz,
            recipe.culture.dt,
        ));
    }
    let steps = (recipe.task.duration_ms as f64 / recipe.culture.dt).round() as u32;
    let mut bufs = SpikingBuffers::new(ctx, &culture, 1, batch, recipe.seed as u32)?;
    bufs.set_batch(batch)?;
    bufs.write_probs(ctx, &probs)?;

    // Mean out-degrees per presynaptic spike.
    let exc_out = culture.exc_synapses() as f64 / n as f64;
    let inh_out = culture.inhibitory.synapses() as f64 / n as f64;
    let in_out = culture.input.synapses() as f64 / ELECTRODES as f64;
    let electrode_spikes: f64 = probs.iter().map(|&p| p as f64).sum::<f64>() * steps as f64;

    let mut rows = Vec::new();
    let mut dense_s = f64::NAN;
    for dense in [true, false] {
        let (median_s, _) = time_launch(ctx, timer, budget, |rec| {
            bufs.reset_state(rec)?;
            for t in 0..steps {
                bufs.step(rec, t, 0, false, dense)?;
            }
            Ok(())
        })?;
        let spikes: f64 = bufs.read_counts(ctx)?.iter().map(|&c| c as f64).sum();
        let events = spikes * (exc_out + inh_out) + electrode_spikes * in_out;
        if dense {
            dense_s = median_s;
        }
        rows.push(SpikingBenchRow {
            recipe: recipe.name.clone(),
            mode: if dense {
                "evaluate, dense (naive)"
            } else {
                "evaluate, event-driven"
            }
            .into(),
            neurons: n,
            batch,
            steps,
            median_s,
            simulated_ms_per_s: batch as f64 * steps as f64 * recipe.culture.dt / median_s,
            synaptic_events_per_s: events / median_s,
            speedup_vs_dense: dense_s / median_s,
            timer: timer.kind.name().into(),
            adapter: ctx.adapter_name(),
        });
    }
    // Training: one sample with STDP every step and the renormalisation after it.
    bufs.set_batch(1)?;
    bufs.write_probs(ctx, &probs[..ELECTRODES])?;
    let (median_s, _) = time_launch(ctx, timer, budget, |rec| {
        bufs.reset_state(rec)?;
        for t in 0..steps {
            bufs.step(rec, t, 0, true, false)?;
        }
        bufs.renormalise(rec)
    })?;
    let spikes: f64 = bufs.read_counts(ctx)?.iter().map(|&c| c as f64).sum();
    let in_spikes: f64 = probs[..ELECTRODES].iter().map(|&p| p as f64).sum::<f64>() * steps as f64;
    rows.push(SpikingBenchRow {
        recipe: recipe.name.clone(),
        mode: "train (STDP + renormalise), 1 sample".into(),
        neurons: n,
        batch: 1,
        steps,
        median_s,
        simulated_ms_per_s: steps as f64 * recipe.culture.dt / median_s,
        synaptic_events_per_s: (spikes * (exc_out + inh_out) + in_spikes * in_out) / median_s,
        speedup_vs_dense: f64::NAN,
        timer: timer.kind.name().into(),
        adapter: ctx.adapter_name(),
    });
    Ok(rows)
}

pub fn print_rows(rows: &[SpikingBenchRow]) {
    println!(
        "{:<28} {:<38} {:>7} {:>6} {:>11} {:>13} {:>14} {:>9}",
        "recipe", "mode", "neurons", "batch", "median", "sim ms/s", "syn events/s", "x dense"
    );
    for r in rows {
        println!(
            "{:<28} {:<38} {:>7} {:>6} {:>9.2}ms {:>13.1} {:>14.3e} {:>9.2}",
            r.recipe,
            r.mode,
            r.neurons,
            r.batch,
            r.median_s * 1e3,
            r.simulated_ms_per_s,
            r.synaptic_events_per_s,
            r.speedup_vs_dense
        );
    }
}
