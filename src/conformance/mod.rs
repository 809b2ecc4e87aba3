//! Conformance: every kernel against its float64 reference on fresh seeded random inputs, ragged
//! shapes and NaN-poisoned outputs. `hebb conformance` and `cargo test` run the same checks.

pub mod backward;
pub mod cases;
pub mod gemm_update;
pub mod kernels;
pub mod rules;
pub mod spiking;
pub mod spiking_cases;

use std::collections::BTreeMap;

use crate::gpu::GpuContext;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// One family of conformance checks: the kernels of one shader family (or one rule layer)
/// against their float64 references.
pub struct Family {
    /// The name `hebb conformance --only` takes.
    pub name: &'static str,
    /// What the family checks, for `--only`'s help and error text.
    pub about: &'static str,
    /// The checks on inputs drawn from a seed; called through [`Family::check`], which
    /// stamps the rows with the seed that reproduces them.
    run: fn(&GpuContext, u64) -> Vec<Row>,
}

impl Family {
    /// The family's rows on inputs drawn from `seed`. Each check derives its own inputs' seed
    /// from it, but every row carries `seed` itself: the value `--seed` (or `HEBB_SEED`)
    /// takes to draw the same inputs again.
    pub fn check(&self, ctx: &GpuContext, seed: u64) -> Vec<Row> {
        let mut rows = (self.run)(ctx, seed);
        for row in &mut rows {
            row.seed = seed;
        }
        rows
    }
}

/// Every conformance family, in the order `hebb conformance` runs them. The CLI (`--only`, the
/// full run) and `cargo test` (kernels-tests/conformance.rs) all read this one list, so a new
/// family is checked everywhere once it is added here.
pub const FAMILIES: &[Family] = &[
    Family {
        name: "gemm",
        about: "tiled, subgroup, f16 and split-K matrix products",
        run: kernels::gemm_checks,
    },
    Family {
        name: "gemm_update",
        about: "GEMM epilogues that apply the weight update",
        run: gemm_update::gemm_update_checks,
    },
    Family {
        name: "im2col",
        about: "patch extraction for convolutions",
        run: kernels::im2col_checks,
    },
    Family {
        name: "conv",
        about: "implicit-GEMM convolutions",
        run: kernels::conv_checks,
    },
    Family {
        name: "classifier",
        about: "the read-outs' losses, gradients and argmax",
        run: kernels::classifier_checks,
    },
    Family {
        name: "backward",
        about: "fine-tuning's backward passes: col2im, a conv's dW and dX, pooling, batch \
                norm, activations, dropout",
        run: backward::backward_checks,
    },
    Family {
        name: "pool",
        about: "max and average pooling",
        run: kernels::pool_checks,
    },
    Family {
        name: "sanger_scan",
        about: "Sanger's update by running reconstruction, in neuron blocks",
        run: kernels::sanger_scan_checks,
    },
    Family {
        name: "norm",
        about: "batch normalisation, training and evaluation",
        run: kernels::norm_checks,
    },
    Family {
        name: "reduce",
        about: "row, column and global reductions",
        run: kernels::reduce_checks,
    },
    Family {
        name: "elementwise",
        about: "fill, copy, scale, axpy, dropout and f16 casts",
        run: kernels::elementwise_checks,
    },
    Family {
        name: "layout",
        about: "row, plane and block layout transposes",
        run: kernels::layout_checks,
    },
    Family {
        name: "competition",
        about: "row-wise competitions, per-row and subgroup kernels",
        run: rules::competition_checks,
    },
    Family {
        name: "projection_competition",
        about: "the fused projection + competition kernel",
        run: rules::projection_competition_checks,
    },
    Family {
        name: "spiking",
        about: "the spiking culture's kernels",
        run: spiking::spiking_checks,
    },
    Family {
        name: "rules",
        about: "every rule preset's step on random shapes, all execution paths",
        run: rules::rule_checks,
    },
];

/// The family called `name`, or an error listing the names there are.
pub fn family(name: &str) -> Result<&'static Family, String> {
    FAMILIES.iter().find(|f| f.name == name).ok_or_else(|| {
        format!(
            "no conformance family {name:?}; expected one of: {}",
            FAMILIES
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The families `only` names (a comma list), or every family, in registry order.
pub fn select(only: Option<&str>) -> Result<Vec<&'static Family>, String> {
    let Some(list) = only else {
        return Ok(FAMILIES.iter().collect());
    };
    let mut chosen = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        chosen.push(family(name)?);
    }
    if chosen.is_empty() {
        return Err(format!("{list:?} names no family"));
    }
    Ok(chosen)
}

/// The rows of the families `only` names (a comma list), or of every family in order.
pub fn run(ctx: &GpuContext, seed: u64, only: Option<&str>) -> Result<Vec<Row>, String> {
    Ok(select(only)?
        .into_iter()
        .flat_map(|f| f.check(ctx, seed))
        .collect())
}

/// One check's worst result over runs on different seeds (`hebb conformance --repeat`).
#[derive(Clone, Debug, Serialize)]
pub struct WorstRow {
    /// The run whose rel_err came closest to (or went furthest past) the tolerance; a failed
    /// run before any passing one. Its `seed` reproduces it.
    #[serde(flatten)]
    pub worst: Row,
    /// rel_err / tol of that run, the share of its tolerance the check used (above 1: failed).
    /// Infinite (JSON null) for a failure that compared nothing (an error, a NaN) and for any
    /// error under a zero tolerance; 0 for an exact pass under a zero tolerance.
    pub tol_share: f64,
    /// Runs that had this check.
    pub runs: usize,
    /// Runs in which it failed.
    pub failed: usize,
}

/// rel_err / tol, infinite for failures that compared nothing (an error, a NaN) and for any
/// error under a zero tolerance.
fn tol_share(row: &Row) -> f64 {
    if !row.ok && (row.rel_err.is_nan() || row.rel_err <= row.tol) {
        f64::INFINITY
    } else if row.tol > 0.0 {
        row.rel_err / row.tol
    } else if row.rel_err == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The rows of several runs folded, run by run, into one row per check, in the order the
/// checks first appear: the worst run of each, how many runs had it and how many of those
/// failed. Its size is one run's (plus any rows only a failing run has), however many runs
/// are added. A check is its kernel and variant with how many rows of that kernel and variant
/// came before it in the run, not its shape: some checks draw part of their shape from the
/// seed (dropout's first element), so the shape shown is the worst run's. A check whose
/// failure writes fewer rows than its pass (softmax_xent writes one, not three) leaves the
/// later checks' keys as they were.
#[derive(Default)]
pub struct WorstOverRuns {
    rows: Vec<WorstRow>,
    index: std::collections::HashMap<(String, String, usize), usize>,
}

impl WorstOverRuns {
    pub fn add(&mut self, run: Vec<Row>) {
        let mut seen: std::collections::HashMap<(String, String), usize> =
            std::collections::HashMap::new();
        for row in run {
            let before = seen
                .entry((row.kernel.clone(), row.variant.clone()))
                .or_insert(0);
            let key = (row.kernel.clone(), row.variant.clone(), *before);
            *before += 1;
            let m = tol_share(&row);
            let Some(&i) = self.index.get(&key) else {
                self.index.insert(key, self.rows.len());
                self.rows.push(WorstRow {
                    failed: usize::from(!row.ok),
                    worst: row,
                    tol_share: m,
                    runs: 1,
                });
                continue;
            };
            let w = &mut self.rows[i];
            w.runs += 1;
            w.failed += usize::from(!row.ok);
            // A failure outranks any pass; among equals the larger share of the tolerance.
            if (!row.ok, m) > (!w.worst.ok, w.tol_share) {
                w.worst = row;
                w.tol_share = m;
            }
        }
    }

    pub fn rows(&self) -> &[WorstRow] {
        &self.rows
    }
}

/// Prints `hebb conformance --repeat`'s table: each check's worst run, its share of the
/// tolerance, and the seed that reproduces it.
pub fn print_worst_table(rows: &[WorstRow]) {
    println!(
        "{:<20} {:<34} {:<40} {:>10} {:>10} {:>7} {:>7}  {:<20}  ok",
        "kernel", "variant", "shape", "worst err", "tol", "of tol", "failed", "seed"
    );
    for w in rows {
        let r = &w.worst;
        println!(
            "{:<20} {:<34} {:<40} {:>10.3e} {:>10.3e} {:>7.3} {:>7}  {:<20}  {}{}",
            r.kernel,
            r.variant,
            r.shape_text(),
            r.rel_err,
            r.tol,
            w.tol_share,
            format!("{}/{}", w.failed, w.runs),
            r.seed,
            if w.failed == 0 { "ok" } else { "FAIL" },
            r.error
                .as_ref()
                .filter(|_| !r.ok)
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        );
    }
}

/// One checked (kernel, variant, shape). JSON field names are a stable interface.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub kernel: String,
    pub variant: String,
    pub shape: BTreeMap<String, usize>,
    /// ‖got − ref‖₂ / ‖ref‖₂ over the elements the kernel writes (NaN if any is NaN).
    pub rel_err: f64,
    pub tol: f64,
    pub ok: bool,
    /// The run's seed, from which the check derived its inputs; `--seed` (`HEBB_SEED` in the
    /// tests) with this value draws them again.
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Row {
    pub fn new(
        kernel: &str,
        variant: impl Into<String>,
        shape: &[(&str, usize)],
        seed: u64,
    ) -> Self {
        Self {
            kernel: kernel.into(),
            variant: variant.into(),
            shape: shape.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            rel_err: f64::NAN,
            tol: 0.0,
            ok: false,
            seed,
            error: None,
        }
    }

    /// Fills in the comparison of `got` against `want` under `tol`.
    pub fn compare(mut self, got: &[f64], want: &[f64], tol: f64) -> Self {
        self.tol = tol;
        if got.len() != want.len() {
            self.error = Some(format!(
                "got {} elements, expected {}",
                got.len(),
                want.len()
            ));
            return self;
        }
        self.rel_err = rel_err(got, want);
        self.ok = self.rel_err <= tol;
        if got.iter().any(|v| !v.is_finite()) {
            self.ok = false;
            self.error = Some("output holds NaN/Inf (an element was not written?)".into());
        }
        self
    }

    /// The row of a configuration this device's limits exclude (`limit` is the refusal the
    /// limits check gives): it passes only when the launch was refused with that error, and
    /// fails if the launch ran (a kernel past the limits is undefined behaviour) or failed for
    /// another reason.
    pub fn refusal<T>(
        mut self,
        limit: &str,
        launch: std::result::Result<T, impl ToString>,
    ) -> Self {
        self.tol = 0.0;
        match launch.map_err(|e| e.to_string()) {
            Err(e) if e.contains(limit) => {
                self.ok = true;
                self.rel_err = 0.0;
                self.error = Some(format!("refused as expected: {e}"));
            }
            Err(e) => {
                self.ok = false;
                self.error = Some(format!("refused, but not for the limit ({limit}): {e}"));
            }
            Ok(_) => {
                self.ok = false;
                self.error = Some(format!("ran although {limit}"));
            }
        }
        self
    }

    pub fn fail(mut self, error: impl ToString) -> Self {
        self.ok = false;
        self.error = Some(error.to_string());
        self
    }

    pub fn shape_text(&self) -> String {
        self.shape
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// f32 values as f64, for comparing with a float64 reference.
pub fn widen(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// ‖got − want‖₂ / ‖want‖₂, or ‖got − want‖₂ = ‖got‖₂ when ‖want‖₂ is 0: exactly the case
/// metric of FORMAT.md §6.
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w) * (g - w)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    if norm == 0.0 {
        diff.sqrt()
    } else {
        (diff / norm).sqrt()
    }
}

/// Unit roundoff of f32 (half the distance from 1 to the next float).
pub const U32: f64 = 1.0 / (1u64 << 24) as f64;

/// f32 roundings by which [`nudged`] moves each input: about what a chain of f32 operations
/// does to the values it passes on.
pub const NUDGE_ROUNDINGS: f64 = 16.0;

/// `x` with each element scaled by (1 + NUDGE_ROUNDINGS·u·r), r ∈ [−1, 1) drawn from `seed`.
/// Checks whose float64 reference can be ill-conditioned at a random draw (near a kink, a
/// tie, a cancelling sum) measure how far the reference itself moves between `x` and this,
/// and allow a multiple of that move on top of their bar: the GPU's f32 arithmetic perturbs
/// its intermediates by about as much.
pub fn nudged(x: &[f64], seed: u64) -> Vec<f64> {
    let r = random_f32(derive_seed(seed, 0x6e75_6467), x.len());
    x.iter()
        .zip(r)
        .map(|(&v, r)| v * (1.0 + NUDGE_ROUNDINGS * U32 * r as f64))
        .collect()
}

/// Seeded uniform values in [-1, 1), never all zero.
pub fn random_f32(seed: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A batch norm's affine parameters for checks, drawn by `seed`: γ in [0.5, 1.5] (C) then β in
/// [−0.5, 0.5] (C), away from the identity.
pub fn random_affine(seed: u64, channels: usize) -> Vec<f32> {
    let r = random_f32(seed, 2 * channels);
    (0..2 * channels)
        .map(|i| {
            if i < channels {
                1.0 + 0.5 * r[i]
            } else {
                0.5 * r[i]
            }
        })
        .collect()
}

/// Derives the seed of check `index` from the run's seed (SplitMix64 step).
pub fn derive_seed(base: u64, index: u64) -> u64 {
    let mut z = base.wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Prints rows as an aligned table.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:<20} {:<34} {:<40} {:>10} {:>10}  ok",
        "kernel", "variant", "shape", "rel_err", "tol"
    );
    for r in rows {
        println!(
            "{:<20} {:<34} {:<40} {:>10.3e} {:>10.3e}  {}{}",
            r.kernel,
            r.variant,
            r.shape_text(),
            r.rel_err,
            r.tol,
            if r.ok { "ok" } else { "FAIL" },
            match (&r.error, r.ok) {
                (Some(e), _) => format!("  ({e})"),
                (None, false) => format!("  (--seed {} reproduces)", r.seed),
                _ => String::new(),
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kernel: &str, variant: &str, rel_err: f64, tol: f64, seed: u64) -> Row {
        let mut r = Row::new(kernel, variant, &[("n", 1)], seed);
        r.rel_err = rel_err;
        r.tol = tol;
        r.ok = rel_err <= tol;
        r
    }

    /// Each check keeps its worst run (a failure first), and a run whose failing check writes
    /// fewer rows leaves the later checks' counts whole.
    #[test]
    fn worst_over_runs_keeps_each_checks_worst_run_and_survives_missing_rows() {
        let mut worst = WorstOverRuns::default();
        worst.add(vec![
            row("softmax", "loss", 1e-7, 1e-6, 1),
            row("softmax", "grad", 2e-7, 1e-6, 1),
            row("gemm", "tiled", 5e-7, 1e-6, 1),
            row("gemm", "tiled", 1e-7, 1e-6, 1),
        ]);
        // Run 2: softmax fails with its error row only; gemm's two checks follow.
        worst.add(vec![
            row("softmax", "loss", f64::NAN, 1e-6, 2).fail("launch failed"),
            row("gemm", "tiled", 2e-7, 1e-6, 2),
            row("gemm", "tiled", 9e-7, 1e-6, 2),
        ]);
        worst.add(vec![
            row("softmax", "loss", 3e-7, 1e-6, 3),
            row("softmax", "grad", 8e-7, 1e-6, 3),
            row("gemm", "tiled", 4e-7, 1e-6, 3),
            row("gemm", "tiled", 3e-7, 1e-6, 3),
        ]);
        let got: Vec<(&str, usize, usize, u64, f64)> = worst
            .rows()
            .iter()
            .map(|w| {
                (
                    w.worst.kernel.as_str(),
                    w.runs,
                    w.failed,
                    w.worst.seed,
                    w.tol_share,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("softmax", 3, 1, 2, f64::INFINITY),
                ("softmax", 2, 0, 3, 8e-7 / 1e-6),
                ("gemm", 3, 0, 1, 5e-7 / 1e-6),
                ("gemm", 3, 0, 2, 9e-7 / 1e-6),
            ]
        );
    }
}
