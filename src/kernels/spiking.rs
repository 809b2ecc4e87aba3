//! Launchers for `shaders/spiking.wgsl`: the buffers of a batch of simulated cultures and one
//! dispatch per entry point. Bindings (the same numbering in every entry point that uses them):
//!   0 uniform SpikingParams
//!   1 state   f32 [5·B·n + 2·B·E]: v, refractory, xY, xZ, counts ([B, n] each), xX, p_e ([B, E])
//!   2 spikes  u32 [4·B·n + 2·B·E + B]: sY ring [3, B, n], sX ring [2, B, E], lists [B, n],
//!             list lengths [B]
//!   3 ell_idx u32: input rows [n, width_in], inhibitory rows [n, width_inh]
//!   4 ell_w   f32: input [C, n, width_in], inhibitory [C, n, width_inh]
//!   5..8 W_E  f32 rows c·n + pre of n postsynaptic weights, `rows_per_chunk` rows per binding
//! With precomputed spike trains (`write_spike_trains`, the interval encoder), each step first
//! copies its [B, E] row of 0/1 from the trains buffer into p_e; the shader is the same.

use bytemuck::{Pod, Zeroable};

use crate::error::{HebbError, Result};
use crate::gpu::{DType, GpuContext, Recorder, Tensor, grid_1d};
use crate::kernels::{SPIKING_WGSL, check_loop_budget, record_dispatch, to_u32};
use crate::spiking::culture::{Culture, ELECTRODES};

/// Mirrors `SpikingParams` in spiking.wgsl (96 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SpikingParams {
    pub n: u32,
    pub batch: u32,
    pub cultures: u32,
    pub electrodes: u32,
    pub width_in: u32,
    pub width_inh: u32,
    pub rows_per_chunk: u32,
    pub t: u32,
    pub seed: u32,
    pub sample_base: u32,
    pub flags: u32,
    pub refrac_steps: u32,
    pub decay_m: f32,
    pub rest: f32,
    pub thresh: f32,
    pub reset: f32,
    pub decay_trace: f32,
    pub lbound: f32,
    pub a_plus: f32,
    pub a_minus: f32,
    pub norm_in: f32,
    pub norm_exc: f32,
    pub norm_inh: f32,
    pub _pad0: f32,
}

impl SpikingParams {
    /// The launch parameters of `cultures` copies of `culture` with room for `capacity` batch
    /// elements and W_E split into bindings of `rows_per_chunk` rows (t, sample base 0).
    pub fn new(
        culture: &Culture,
        cultures: usize,
        capacity: usize,
        rows_per_chunk: usize,
        seed: u32,
    ) -> Result<Self> {
        let u = |what: &str, v: usize| to_u32("spiking", what, v);
        let (n, cfg) = (culture.neurons(), &culture.config);
        Ok(SpikingParams {
            n: u("n", n)?,
            batch: u("batch", capacity)?,
            cultures: u("cultures", cultures)?,
            electrodes: ELECTRODES as u32,
            width_in: u("input width", culture.input.width)?,
            width_inh: u("inhibitory width", culture.inhibitory.width)?,
            rows_per_chunk: u("rows per chunk", rows_per_chunk)?,
            t: 0,
            seed,
            sample_base: 0,
            flags: cfg.lower_bound.is_finite() as u32,
            refrac_steps: cfg.refrac_steps(),
            decay_m: cfg.decay_m() as f32,
            rest: cfg.rest as f32,
            thresh: cfg.thresh as f32,
            reset: cfg.reset as f32,
            decay_trace: cfg.decay_trace() as f32,
            lbound: if cfg.lower_bound.is_finite() {
                cfg.lower_bound as f32
            } else {
                0.0
            },
            a_plus: cfg.a_plus as f32,
            a_minus: cfg.a_minus as f32,
            norm_in: cfg.input_strength as f32,
            norm_exc: cfg.exc_strength as f32,
            norm_inh: cfg.inh_strength as f32,
            _pad0: 0.0,
        })
    }
}

/// Bindings of W_E.
pub const EXC_CHUNKS: usize = 4;

/// Rows of W_E (n weights each, for `cultures` cultures of n neurons) per binding on this
/// adapter, or an error when they need more than `EXC_CHUNKS` bindings. Call it before
/// building a large culture: W_E takes 4·C·n² bytes.
pub fn exc_rows_per_chunk(ctx: &GpuContext, n: usize, cultures: usize) -> Result<usize> {
    let row_bytes = 4 * n.max(1) as u64;
    // Tensors are padded to 16 bytes, and a binding is also a whole buffer.
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size)
        & !15;
    let max_rows = ((limit.saturating_sub(16)) / row_bytes).max(1) as usize;
    let rows = cultures * n;
    let rows_per_chunk = rows.clamp(1, max_rows);
    if rows.div_ceil(rows_per_chunk) > EXC_CHUNKS {
        return Err(HebbError::TooLargeForBinding {
            tensor: format!("excitatory weights of {cultures} culture(s) of {n} neurons"),
            bytes: rows as u64 * row_bytes,
            limit: EXC_CHUNKS as u64 * limit,
        });
    }
    Ok(rows_per_chunk)
}

/// The GPU buffers of C cultures (weights) simulated on up to `capacity` batch elements.
pub struct SpikingBuffers {
    pub params: SpikingParams,
    pub capacity: usize,
    pub state: Tensor,
    pub spikes: Tensor,
    pub ell_idx: Tensor,
    pub ell_w: Tensor,
    /// W_E chunks; unused ones are 4-element placeholders.
    pub exc: Vec<Tensor>,
    /// Precomputed electrode spike trains [steps, B, E] of 0/1 (`write_spike_trains`): step t
    /// copies its [B, E] slice into p_e, so electrodes_step fires exactly where the train has
    /// a 1 (its uniform draw u ∈ [0, 1) is < 1 and never < 0). None until first written.
    pub trains: Option<Tensor>,
    /// Steps the current trains cover; 0 when the electrodes draw Bernoulli(p_e) instead.
    pub train_steps: usize,
}

fn u32_tensor(ctx: &GpuContext, label: &str, data: &[u32]) -> Result<Tensor> {
    let bits: Vec<f32> = data.iter().map(|&u| f32::from_bits(u)).collect();
    Tensor::from_f32(ctx, label, &[bits.len().max(1)], &pad1(bits))
}

fn pad1(mut v: Vec<f32>) -> Vec<f32> {
    if v.is_empty() {
        v.push(0.0);
    }
    v
}

impl SpikingBuffers {
    /// Uploads `cultures` copies of `culture`'s weights, with room for `capacity` batch
    /// elements (a multiple of `cultures`).
    pub fn new(
        ctx: &GpuContext,
        culture: &Culture,
        cultures: usize,
        capacity: usize,
        seed: u32,
    ) -> Result<Self> {
        Self::with_chunk_rows(ctx, culture, cultures, capacity, seed, None)
    }

    /// As `new`, with at most `chunk_rows` rows of W_E per binding when given (tests: the
    /// split across bindings on small cultures); by default as many as the adapter allows.
    pub fn with_chunk_rows(
        ctx: &GpuContext,
        culture: &Culture,
        cultures: usize,
        capacity: usize,
        seed: u32,
        chunk_rows: Option<usize>,
    ) -> Result<Self> {
        let n = culture.neurons();
        if cultures == 0 || capacity == 0 || !capacity.is_multiple_of(cultures) {
            return Err(HebbError::Launch {
                kernel: "spiking".into(),
                message: format!(
                    "batch capacity {capacity} must be a positive multiple of the {cultures} cultures"
                ),
            });
        }
        let rows = cultures * n;
        let rows_per_chunk = match chunk_rows {
            Some(r) => r.clamp(1, rows),
            None => exc_rows_per_chunk(ctx, n, cultures)?,
        };
        if rows.div_ceil(rows_per_chunk) > EXC_CHUNKS {
            return Err(HebbError::Launch {
                kernel: "spiking".into(),
                message: format!(
                    "{rows} excitatory rows in chunks of {rows_per_chunk} need more than {EXC_CHUNKS} bindings"
                ),
            });
        }
        let mut exc = Vec::with_capacity(EXC_CHUNKS);
        for k in 0..EXC_CHUNKS {
            let first = k * rows_per_chunk;
            let last = rows.min(first + rows_per_chunk);
            let mut data = Vec::with_capacity(last.saturating_sub(first) * n);
            for r in first..last {
                let pre = r % n;
                data.extend_from_slice(&culture.exc[pre * n..(pre + 1) * n]);
            }
            exc.push(Tensor::from_f32(
                ctx,
                &format!("W_E chunk {k}"),
                &[data.len().max(4)],
                &{
                    data.resize(data.len().max(4), -1.0);
                    data
                },
            )?);
        }
        let mut idx = culture.input.index.clone();
        idx.extend_from_slice(&culture.inhibitory.index);
        let mut w = Vec::new();
        for _ in 0..cultures {
            w.extend_from_slice(&culture.input.weight);
        }
        for _ in 0..cultures {
            w.extend_from_slice(&culture.inhibitory.weight);
        }
        let e = ELECTRODES;
        let state_len = 5 * capacity * n + 2 * capacity * e;
        let spikes_len = 4 * capacity * n + 2 * capacity * e + capacity;
        let params = SpikingParams::new(culture, cultures, capacity, rows_per_chunk, seed)?;
        Ok(Self {
            params,
            capacity,
            state: Tensor::from_f32(ctx, "spiking state", &[state_len], &vec![0.0; state_len])?,
            spikes: Tensor::from_f32(ctx, "spikes", &[spikes_len], &vec![0.0; spikes_len])?,
            ell_idx: u32_tensor(ctx, "ELL indices", &idx)?,
            ell_w: Tensor::from_f32(ctx, "ELL weights", &[w.len().max(1)], &pad1(w))?,
            exc,
            trains: None,
            train_steps: 0,
        })
    }

    /// Sets the batch size of the next launches (at most the capacity, a multiple of C).
    pub fn set_batch(&mut self, batch: usize) -> Result<()> {
        let c = self.params.cultures as usize;
        if batch == 0 || batch > self.capacity || !batch.is_multiple_of(c) {
            return Err(HebbError::Launch {
                kernel: "spiking".into(),
                message: format!(
                    "batch {batch} must be a multiple of the {c} cultures, at most the capacity {}",
                    self.capacity
                ),
            });
        }
        self.params.batch = batch as u32;
        Ok(())
    }

    pub fn batch(&self) -> usize {
        self.params.batch as usize
    }

    /// Offsets into `state` (f32 elements) of the [B, n] or [B, E] sections at this batch size.
    pub fn counts_offset(&self) -> usize {
        4 * self.batch() * self.params.n as usize
    }
    pub fn probs_offset(&self) -> usize {
        let (b, n, e) = (self.batch(), self.params.n as usize, ELECTRODES);
        5 * b * n + b * e
    }

    /// Writes the per-step spike probabilities p_e of each batch element ([B, E]).
    pub fn write_probs(&mut self, ctx: &GpuContext, probs: &[f32]) -> Result<()> {
        let want = self.batch() * ELECTRODES;
        if probs.len() != want {
            return Err(HebbError::Shape {
                tensor: "electrode spike probabilities".into(),
                message: format!("expected {want} values ([B, 60]), got {}", probs.len()),
            });
        }
        ctx.queue.write_buffer(
            &self.state.buffer,
            4 * self.probs_offset() as u64,
            bytemuck::cast_slice(probs),
        );
        self.train_steps = 0;
        Ok(())
    }

    /// Writes precomputed electrode spike trains for the next `steps` steps: `trains` is
    /// [steps, B, E] of 0.0 / 1.0 at the current batch size. Until `write_probs` is called
    /// again, step t fires the electrodes of row t instead of drawing.
    pub fn write_spike_trains(
        &mut self,
        ctx: &GpuContext,
        trains: &[f32],
        steps: usize,
    ) -> Result<()> {
        let want = steps * self.batch() * ELECTRODES;
        if trains.len() != want || steps == 0 {
            return Err(HebbError::Shape {
                tensor: "electrode spike trains".into(),
                message: format!(
                    "expected {want} values ([{steps} steps, {} samples, 60]), got {}",
                    self.batch(),
                    trains.len()
                ),
            });
        }
        if let Some(&v) = trains.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(HebbError::Shape {
                tensor: "electrode spike trains".into(),
                message: format!("holds {v}; expected only 0 and 1"),
            });
        }
        // Sized for the capacity, so one allocation serves every batch of a run.
        let cap = steps * self.capacity * ELECTRODES;
        if self.trains.as_ref().is_none_or(|t| t.len() < cap) {
            self.trains = Some(Tensor::empty(
                ctx,
                "electrode spike trains",
                &[cap],
                crate::gpu::DType::F32,
            )?);
        }
        let t = self.trains.as_ref().expect("allocated above");
        ctx.queue
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(trains));
        self.train_steps = steps;
        Ok(())
    }

    fn record(
        &self,
        rec: &mut Recorder<'_>,
        entry: &'static str,
        params: &SpikingParams,
        bindings: &[u32],
        groups: [u32; 3],
    ) -> Result<()> {
        let tensors: Vec<(u32, &Tensor)> = bindings
            .iter()
            .map(|&slot| {
                let t = match slot {
                    1 => &self.state,
                    2 => &self.spikes,
                    3 => &self.ell_idx,
                    4 => &self.ell_w,
                    k => &self.exc[k as usize - 5],
                };
                (slot, t)
            })
            .collect();
        record_dispatch(rec, &SPIKING_WGSL, entry, params, &tensors, groups)
    }

    fn grid(&self, ctx: &GpuContext, entry: &str, items: usize) -> Result<[u32; 3]> {
        Ok(grid_1d(
            ctx,
            to_u32(entry, "workgroups", items.div_ceil(64))?,
        ))
    }

    /// Every batch element's neurons at rest, traces and history cleared.
    pub fn reset_state(&self, rec: &mut Recorder<'_>) -> Result<()> {
        let g = self.grid(
            rec.ctx,
            "reset_state",
            self.batch() * self.params.n as usize,
        )?;
        self.record(rec, "reset_state", &self.params, &[1, 2], g)
    }

    /// One step t: electrodes, neurons (`dense`: the naive excitatory input over all
    /// presynaptic neurons), spike lists, and STDP when `learning` (needs B == C).
    pub fn step(
        &self,
        rec: &mut Recorder<'_>,
        t: u32,
        sample_base: u32,
        learning: bool,
        dense: bool,
    ) -> Result<()> {
        let ctx = rec.ctx;
        let (b, n) = (self.batch(), self.params.n as usize);
        if learning && b != self.params.cultures as usize {
            return Err(HebbError::Launch {
                kernel: "stdp_update".into(),
                message: format!(
                    "learning runs one sample per culture: batch {b}, cultures {}",
                    self.params.cultures
                ),
            });
        }
        let p = SpikingParams {
            t,
            sample_base,
            ..self.params
        };
        // Loops per invocation: the ELL rows, the spike list or all n (dense, STDP, renorm).
        let widths = (p.width_in + p.width_inh) as u64;
        check_loop_budget(
            ctx,
            "lif_step",
            widths + n as u64,
            "a neuron's synaptic input",
        )?;
        let all = [1, 2, 3, 4, 5, 6, 7, 8];
        if self.train_steps > 0 {
            let trains = self
                .trains
                .as_ref()
                .expect("train_steps > 0 only once written");
            if t as usize >= self.train_steps {
                return Err(HebbError::Launch {
                    kernel: "electrodes_step".into(),
                    message: format!(
                        "step {t} is past the {} steps of the written spike trains",
                        self.train_steps
                    ),
                });
            }
            let row = (b * ELECTRODES) as u64;
            rec.encoder().copy_buffer_to_buffer(
                &trains.buffer,
                4 * t as u64 * row,
                &self.state.buffer,
                4 * self.probs_offset() as u64,
                4 * row,
            );
        }
        self.record(
            rec,
            "electrodes_step",
            &p,
            &[1, 2],
            self.grid(ctx, "x", b * ELECTRODES)?,
        )?;
        let entry = if dense { "lif_step_dense" } else { "lif_step" };
        self.record(rec, entry, &p, &all, self.grid(ctx, entry, b * n)?)?;
        self.record(
            rec,
            "compact_spikes",
            &p,
            &[2],
            grid_1d(ctx, to_u32("compact", "B", b)?),
        )?;
        if learning {
            let g = self.grid(ctx, "stdp_update", self.params.cultures as usize * n)?;
            self.record(rec, "stdp_update", &p, &all, g)?;
        }
        Ok(())
    }

    /// Each neuron's incoming weights of each connection scaled back to its strength.
    pub fn renormalise(&self, rec: &mut Recorder<'_>) -> Result<()> {
        let n = self.params.n as usize;
        let widths = (self.params.width_in + self.params.width_inh) as u64;
        let loops = 2 * (n as u64 + widths);
        check_loop_budget(rec.ctx, "renormalise", loops, "a neuron's incoming weights")?;
        let g = self.grid(rec.ctx, "renormalise", self.params.cultures as usize * n)?;
        self.record(rec, "renormalise", &self.params, &[4, 5, 6, 7, 8], g)
    }

    /// Copies every weight back: (input ELL weights, inhibitory ELL weights, W_E dense by pre
    /// per culture), each [C, ...].
    pub fn read_weights(&self, ctx: &GpuContext) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let p = &self.params;
        let (c, n) = (p.cultures as usize, p.n as usize);
        let ell = self.ell_w.to_f32_vec(ctx)?;
        let split = c * n * p.width_in as usize;
        let inh_len = c * n * p.width_inh as usize;
        let mut exc = Vec::with_capacity(c * n * n);
        for t in &self.exc {
            exc.extend(t.to_f32_vec(ctx)?);
            if exc.len() >= c * n * n {
                break;
            }
        }
        exc.truncate(c * n * n);
        Ok((
            ell[..split].to_vec(),
            ell[split..split + inh_len].to_vec(),
            exc,
        ))
    }

    /// Overwrites every weight (the layout `read_weights` returns).
    pub fn write_weights(
        &self,
        ctx: &GpuContext,
        input: &[f32],
        inhibitory: &[f32],
        exc: &[f32],
    ) -> Result<()> {
        let p = &self.params;
        let (c, n) = (p.cultures as usize, p.n as usize);
        let expect = [
            ("input weights", input.len(), c * n * p.width_in as usize),
            (
                "inhibitory weights",
                inhibitory.len(),
                c * n * p.width_inh as usize,
            ),
            ("excitatory weights", exc.len(), c * n * n),
        ];
        for (what, got, want) in expect {
            if got != want {
                return Err(HebbError::Shape {
                    tensor: what.into(),
                    message: format!("expected {want} values, got {got}"),
                });
            }
        }
        let mut ell = input.to_vec();
        ell.extend_from_slice(inhibitory);
        ctx.queue
            .write_buffer(&self.ell_w.buffer, 0, bytemuck::cast_slice(&ell));
        let per = p.rows_per_chunk as usize * n;
        for (k, chunk) in exc.chunks(per).enumerate() {
            ctx.queue
                .write_buffer(&self.exc[k].buffer, 0, bytemuck::cast_slice(chunk));
        }
        Ok(())
    }

    /// The spike counts of the last sample batch, [B, n] (only that section is read back).
    pub fn read_counts(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let len = self.batch() * self.params.n as usize;
        let bytes = self
            .state
            .read_words(ctx, self.counts_offset() as u64, len as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The current Y spikes (slot of step t) of batch element b (only those n words are read).
    pub fn read_spikes(&self, ctx: &GpuContext, t: u32, b: usize) -> Result<Vec<bool>> {
        let n = self.params.n as usize;
        let at = ((t as usize % 3) * self.batch() + b) * n;
        let bytes = self.spikes.read_words(ctx, at as u64, n as u64)?;
        let words: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(words.iter().map(|&w| w != 0).collect())
    }
}

/// Helper for tests and the reference comparison: the raw `state` and `spikes` words.
pub fn read_raw(ctx: &GpuContext, bufs: &SpikingBuffers) -> Result<(Vec<f32>, Vec<u32>)> {
    let state = bufs.state.to_f32_vec(ctx)?;
    let spikes = bufs
        .spikes
        .to_f32_vec(ctx)?
        .iter()
        .map(|v| v.to_bits())
        .collect();
    Ok((state, spikes))
}

/// Writes raw `state` and `spikes` words (tests: random initial states).
pub fn write_raw(
    ctx: &GpuContext,
    bufs: &SpikingBuffers,
    state: &[f32],
    spikes: &[u32],
) -> Result<()> {
    bufs.state.expect_dtype(DType::F32, "spiking state")?;
    bufs.state.write_f32(ctx, state)?;
    let bits: Vec<f32> = spikes.iter().map(|&u| f32::from_bits(u)).collect();
    bufs.spikes.write_f32(ctx, &bits)
}
