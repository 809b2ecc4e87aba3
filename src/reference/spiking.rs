//! Float64 reference of `shaders/spiking.wgsl`: one step (electrodes, LIF neurons, relays,
//! traces, spike lists, STDP), the renormalisation and the reset, on the same raw layouts as
//! the GPU buffers (`kernels::spiking`), so a GPU state can be stepped here and compared.
//! Written from the model in §10 of shared/docs/seeds-lagani-fasthebb-spikinggrid.md and the
//! step order documented in the shader.

use crate::kernels::spiking::SpikingParams;
use crate::spiking::culture::{CultureConfig, NONE};

/// The PCG output function of the shader.
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// The shader's uniform draw for (seed, sample, step, electrode).
pub fn uniform01(seed: u32, sample: u32, step: u32, e: u32) -> f64 {
    let h = pcg(pcg(pcg(pcg(seed) ^ sample) ^ step) ^ e);
    (h >> 8) as f64 / 16_777_216.0
}

/// A batch of cultures in float64, on the GPU's raw layouts.
pub struct RefSim {
    pub p: SpikingParams,
    pub cfg: CultureConfig,
    pub ell_idx: Vec<u32>,
    /// Input then inhibitory ELL weights, [C, n, width] each.
    pub ell_w: Vec<f64>,
    /// W_E[c, pre, post], −1 where pruned.
    pub exc: Vec<f64>,
    pub state: Vec<f64>,
    pub spikes: Vec<u32>,
}

impl RefSim {
    fn n(&self) -> usize {
        self.p.n as usize
    }
    fn b(&self) -> usize {
        self.p.batch as usize
    }
    fn e(&self) -> usize {
        self.p.electrodes as usize
    }
    fn v_at(&self, b: usize, i: usize) -> usize {
        b * self.n() + i
    }
    fn refrac_at(&self, b: usize, i: usize) -> usize {
        (self.b() + b) * self.n() + i
    }
    fn xy_at(&self, b: usize, i: usize) -> usize {
        (2 * self.b() + b) * self.n() + i
    }
    fn xz_at(&self, b: usize, i: usize) -> usize {
        (3 * self.b() + b) * self.n() + i
    }
    fn count_at(&self, b: usize, i: usize) -> usize {
        (4 * self.b() + b) * self.n() + i
    }
    fn xx_at(&self, b: usize, e: usize) -> usize {
        5 * self.b() * self.n() + b * self.e() + e
    }
    fn pe_at(&self, b: usize, e: usize) -> usize {
        5 * self.b() * self.n() + (self.b() + b) * self.e() + e
    }
    fn sy_at(&self, t: u32, back: u32, b: usize, i: usize) -> usize {
        ((((t + 3 - back) % 3) as usize) * self.b() + b) * self.n() + i
    }
    fn sx_at(&self, t: u32, back: u32, b: usize, e: usize) -> usize {
        3 * self.b() * self.n() + ((((t + 2 - back) % 2) as usize) * self.b() + b) * self.e() + e
    }
    fn list_at(&self, b: usize, k: usize) -> usize {
        3 * self.b() * self.n() + 2 * self.b() * self.e() + b * self.n() + k
    }
    fn list_len_at(&self, b: usize) -> usize {
        4 * self.b() * self.n() + 2 * self.b() * self.e() + b
    }
    fn culture_of(&self, b: usize) -> usize {
        b / (self.b() / self.p.cultures as usize)
    }
    fn in_w_at(&self, c: usize, i: usize, j: usize) -> usize {
        (c * self.n() + i) * self.p.width_in as usize + j
    }
    fn inh_w_at(&self, c: usize, i: usize, j: usize) -> usize {
        let w = self.p.width_inh as usize;
        self.p.cultures as usize * self.n() * self.p.width_in as usize + (c * self.n() + i) * w + j
    }
    fn inh_idx_at(&self, i: usize, j: usize) -> usize {
        self.n() * self.p.width_in as usize + i * self.p.width_inh as usize + j
    }
    fn exc_at(&self, c: usize, pre: usize, post: usize) -> usize {
        (c * self.n() + pre) * self.n() + post
    }

    /// One step t, as the shader's electrodes_step, lif_step (or lif_step_dense: the same
    /// sum), compact_spikes and, when `learning`, stdp_update.
    pub fn step(&mut self, t: u32, sample_base: u32, learning: bool) {
        let (bn, n, ne) = (self.b(), self.n(), self.e());
        let decay_m = self.cfg.decay_m();
        let decay_tr = self.cfg.decay_trace();
        // Electrodes.
        for b in 0..bn {
            for e in 0..ne {
                let u = uniform01(self.p.seed, sample_base + b as u32, t, e as u32);
                let fire = u < self.state[self.pe_at(b, e)];
                let sx = self.sx_at(t, 0, b, e);
                self.spikes[sx] = fire as u32;
                let xx = self.xx_at(b, e);
                self.state[xx] = if fire { 1.0 } else { self.state[xx] * decay_tr };
            }
        }
        // Synaptic inputs from t−1 (electrodes, neurons) and t−2 (relays), then the neurons.
        let mut inputs = vec![0.0; bn * n];
        for b in 0..bn {
            let c = self.culture_of(b);
            for i in 0..n {
                let mut input = 0.0;
                for j in 0..self.p.width_in as usize {
                    let e = self.ell_idx[i * self.p.width_in as usize + j];
                    if e == NONE {
                        break;
                    }
                    let s = self.spikes[self.sx_at(t, 1, b, e as usize)] as f64;
                    input += self.ell_w[self.in_w_at(c, i, j)] * s;
                }
                for pre in 0..n {
                    let w = self.exc[self.exc_at(c, pre, i)];
                    if w > 0.0 && self.spikes[self.sy_at(t, 1, b, pre)] != 0 {
                        input += w;
                    }
                }
                for j in 0..self.p.width_inh as usize {
                    let pre = self.ell_idx[self.inh_idx_at(i, j)];
                    if pre == NONE {
                        break;
                    }
                    let s = self.spikes[self.sy_at(t, 2, b, pre as usize)] as f64;
                    input += self.ell_w[self.inh_w_at(c, i, j)] * s;
                }
                inputs[b * n + i] = input;
            }
        }
        for b in 0..bn {
            for i in 0..n {
                let (va, ra) = (self.v_at(b, i), self.refrac_at(b, i));
                let mut v = self.cfg.rest + (self.state[va] - self.cfg.rest) * decay_m;
                let mut refrac = self.state[ra];
                if refrac <= 0.0 {
                    v += inputs[b * n + i];
                }
                refrac -= 1.0;
                let fire = v >= self.cfg.thresh;
                if fire {
                    v = self.cfg.reset;
                    refrac = self.cfg.refrac_steps() as f64;
                }
                if self.cfg.lower_bound.is_finite() {
                    v = v.max(self.cfg.lower_bound);
                }
                self.state[va] = v;
                self.state[ra] = refrac;
                let sy = self.sy_at(t, 0, b, i);
                self.spikes[sy] = fire as u32;
                let xy = self.xy_at(b, i);
                self.state[xy] = if fire { 1.0 } else { self.state[xy] * decay_tr };
                let relay = self.spikes[self.sy_at(t, 1, b, i)] != 0;
                let xz = self.xz_at(b, i);
                self.state[xz] = if relay {
                    1.0
                } else {
                    self.state[xz] * decay_tr
                };
                let ct = self.count_at(b, i);
                self.state[ct] += fire as u32 as f64;
            }
        }
        // Ordered spike lists.
        for b in 0..bn {
            let mut len = 0;
            for i in 0..n {
                if self.spikes[self.sy_at(t, 0, b, i)] != 0 {
                    let at = self.list_at(b, len);
                    self.spikes[at] = i as u32;
                    len += 1;
                }
            }
            let at = self.list_len_at(b);
            self.spikes[at] = len as u32;
        }
        if learning {
            self.stdp(t);
        }
    }

    fn stdp(&mut self, t: u32) {
        let n = self.n();
        let (a_plus, a_minus) = (self.cfg.a_plus, self.cfg.a_minus);
        for c in 0..self.p.cultures as usize {
            let b = c;
            for i in 0..n {
                let s_post = self.spikes[self.sy_at(t, 0, b, i)] as f64;
                let x_post = self.state[self.xy_at(b, i)];
                for j in 0..self.p.width_in as usize {
                    let e = self.ell_idx[i * self.p.width_in as usize + j];
                    if e == NONE {
                        break;
                    }
                    let s_pre = self.spikes[self.sx_at(t, 0, b, e as usize)] as f64;
                    if s_pre == 0.0 && s_post == 0.0 {
                        continue;
                    }
                    let x_pre = self.state[self.xx_at(b, e as usize)];
                    let at = self.in_w_at(c, i, j);
                    let dw = a_plus * x_pre * s_post - a_minus * s_pre * x_post;
                    self.ell_w[at] = (self.ell_w[at] + dw).max(0.0);
                }
                for j in 0..self.p.width_inh as usize {
                    let pre = self.ell_idx[self.inh_idx_at(i, j)];
                    if pre == NONE {
                        break;
                    }
                    let s_pre = self.spikes[self.sy_at(t, 1, b, pre as usize)] as f64;
                    if s_pre == 0.0 && s_post == 0.0 {
                        continue;
                    }
                    let x_pre = self.state[self.xz_at(b, pre as usize)];
                    let at = self.inh_w_at(c, i, j);
                    let dw = a_minus * s_pre * x_post - a_plus * x_pre * s_post;
                    self.ell_w[at] = (self.ell_w[at] + dw).min(0.0);
                }
                for pre in 0..n {
                    let at = self.exc_at(c, pre, i);
                    let w = self.exc[at];
                    let s_pre = self.spikes[self.sy_at(t, 0, b, pre)] as f64;
                    if w < 0.0 || (s_pre == 0.0 && s_post == 0.0) {
                        continue;
                    }
                    let x_pre = self.state[self.xy_at(b, pre)];
                    let dw = a_plus * x_pre * s_post - a_minus * s_pre * x_post;
                    self.exc[at] = (w + dw).max(0.0);
                }
            }
        }
    }

    /// Every batch element at rest, traces, counts and spike history cleared, as the shader's
    /// reset_state (the electrode probabilities are kept).
    pub fn reset(&mut self) {
        let (bn, n, ne) = (self.b(), self.n(), self.e());
        for b in 0..bn {
            for i in 0..n {
                let (va, ra) = (self.v_at(b, i), self.refrac_at(b, i));
                self.state[va] = self.cfg.rest;
                self.state[ra] = 0.0;
                let (xy, xz, ct) = (self.xy_at(b, i), self.xz_at(b, i), self.count_at(b, i));
                self.state[xy] = 0.0;
                self.state[xz] = 0.0;
                self.state[ct] = 0.0;
                for back in 0..3 {
                    let at = self.sy_at(0, back, b, i);
                    self.spikes[at] = 0;
                }
            }
            for e in 0..ne {
                let xx = self.xx_at(b, e);
                self.state[xx] = 0.0;
                for back in 0..2 {
                    let at = self.sx_at(0, back, b, e);
                    self.spikes[at] = 0;
                }
            }
            let at = self.list_len_at(b);
            self.spikes[at] = 0;
        }
    }

    /// Sets batch element b's per-step electrode probabilities (0 or 1 replays a spike train).
    pub fn set_electrode_probs(&mut self, b: usize, probs: &[f64]) {
        for (e, &p) in probs.iter().enumerate().take(self.e()) {
            let at = self.pe_at(b, e);
            self.state[at] = p;
        }
    }

    /// Neuron i's membrane potential in batch element b.
    pub fn potential(&self, b: usize, i: usize) -> f64 {
        self.state[self.v_at(b, i)]
    }

    /// Whether neuron i of batch element b spiked at step t (the last step run).
    pub fn spiked(&self, t: u32, b: usize, i: usize) -> bool {
        self.spikes[self.sy_at(t, 0, b, i)] != 0
    }

    /// Each neuron's incoming Σ|w| of each connection scaled to its strength.
    pub fn renormalise(&mut self) {
        let n = self.n();
        let (win, winh) = (self.p.width_in as usize, self.p.width_inh as usize);
        for c in 0..self.p.cultures as usize {
            for i in 0..n {
                let rescale = |w: &mut [f64], strength: f64| {
                    let sum: f64 = w.iter().map(|v| v.abs()).sum();
                    if sum > 0.0 {
                        w.iter_mut().for_each(|v| *v *= strength / sum);
                    }
                };
                let a = self.in_w_at(c, i, 0);
                rescale(&mut self.ell_w[a..a + win], self.cfg.input_strength);
                let a = self.inh_w_at(c, i, 0);
                rescale(&mut self.ell_w[a..a + winh], self.cfg.inh_strength);
                let sum: f64 = (0..n)
                    .map(|pre| self.exc[self.exc_at(c, pre, i)].max(0.0))
                    .sum();
                if sum > 0.0 {
                    for pre in 0..n {
                        let at = self.exc_at(c, pre, i);
                        if self.exc[at] > 0.0 {
                            self.exc[at] *= self.cfg.exc_strength / sum;
                        }
                    }
                }
            }
        }
    }
}
