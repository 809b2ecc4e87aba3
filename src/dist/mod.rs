//! Data-parallel training over a group of processes, one per GPU.
//!
//! Every rank holds the same weights and reads its own shard of every global batch
//! (`shard_chunks`). A Hebbian update is a sum over the batch's rows, so the ranks stay
//! identical to one process on the whole global batch if each sum is complete before any
//! non-linear step reads it. The training step asks for that at those points only
//! (`Recorder::all_reduce`, `Recorder::host_sync`):
//!
//! | where | what is summed | before |
//! |---|---|---|
//! | Sanger (HPCA) | ΔW = s·GᵀX − s·tril(GᵀG)·W, s = 1/N_global (linear in the rows) | the optimizer |
//! | WTA family | (G⊙\|G\|)ᵀX − diag(colsum(G⊙\|G\|))·W and colsum\|G\| | the division by colsum\|G\| |
//! | SoftHebb, Krotov | R = YᵀX − diag(colsum(Y⊙U))·W (and SoftHebb's colsum Y) | max\|R\| and the adaptive rate |
//! | ICA | M = (1/N)·YᵀU | ΔW = W − M·W |
//! | BCM | colsum(y²), then ΔW = (1/N)·ΦᵀX | θ's update and Φ; the optimizer |
//! | batch norm | per-channel count, Σx and Σ(x − μ)² (combined in float64) | normalising; the running statistics |
//! | classifier | ∂L/∂W, ∂L/∂b (with 1/N_global) | the optimizer |
//!
//! The group itself is a `Collective`: `Solo` for one process, `mpi::MpiGroup` (cargo feature
//! `mpi`) under `mpirun` or Slurm.

#[cfg(feature = "mpi")]
pub mod mpi;

/// The collective operations a data-parallel run needs. Every rank calls them in the same
/// order with the same lengths; a rank that fails ends the whole job (`abort`) rather than
/// leaving the others waiting.
pub trait Collective {
    /// This process's rank, 0..size.
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Rank among the processes on this node (which GPU of the node this rank drives).
    fn local_rank(&self) -> usize;
    /// Processes on this node (they share its host memory).
    fn local_size(&self) -> usize;
    /// Element-wise sum over the ranks, in place; every rank receives the same values.
    fn all_reduce_sum_f32(&self, data: &mut [f32]);
    fn all_reduce_sum_f64(&self, data: &mut [f64]);
    fn all_reduce_sum_u64(&self, data: &mut [u64]);
    /// Every rank's `value`, in rank order.
    fn all_gather_u64(&self, value: u64) -> Vec<u64>;
    /// Ends every process of the job with `code` (after this rank printed why).
    fn abort(&self, code: i32) -> !;
    /// What launched the group, for messages (`mpi (Open MPI 4.1.4)`).
    fn describe(&self) -> String;
}

/// One process: every collective is the identity.
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn local_size(&self) -> usize {
        1
    }
    fn all_reduce_sum_f32(&self, _: &mut [f32]) {}
    fn all_reduce_sum_f64(&self, _: &mut [f64]) {}
    fn all_reduce_sum_u64(&self, _: &mut [u64]) {}
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        vec![value]
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
    fn describe(&self) -> String {
        "one process".into()
    }
}

/// Environment variables that MPI launchers (mpirun/mpiexec of Open MPI, MPICH, Intel MPI) and
/// Slurm's srun set in every rank they start.
pub const LAUNCHER_VARS: [&str; 5] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
    "SLURM_STEP_NUM_TASKS",
];

/// Whether this process was started by an MPI launcher.
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// The number of processes the launcher started, where its environment says.
fn launched_processes() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
}

/// The process group of this run: the MPI job's ranks when an MPI launcher started this
/// process (and `hebb` was built with the `mpi` feature), else one process. A launcher that
/// started several processes of a build without MPI is an error: each would train alone and
/// overwrite the others' files.
pub fn join() -> crate::Result<std::rc::Rc<dyn Collective>> {
    #[cfg(feature = "mpi")]
    if launched_by_mpi() {
        let group = mpi::MpiGroup::init().ok_or_else(|| {
            crate::HebbError::Config("MPI was already initialised in this process".into())
        })?;
        // srun with an MPI library built without Slurm's PMI starts N one-rank jobs, which
        // would all act as rank 0 and write the same files.
        if let Some(n) = launched_processes()
            && n != group.size()
        {
            return Err(crate::HebbError::Config(format!(
                "the launcher started {n} processes, but MPI sees a job of {}: this MPI \
                 library does not talk to the launcher (under Slurm use srun --mpi=pmix or \
                 pmi2, or mpirun)",
                group.size()
            )));
        }
        if group.size() > 1 {
            abort_job_on_panic();
        }
        return Ok(std::rc::Rc::new(group));
    }
    match launched_processes() {
        Some(n) if n > 1 => Err(crate::HebbError::Config(format!(
            "started by an MPI launcher or srun as one of {n} processes, but this hebb was built \
             without MPI; rebuild it with `cargo build --release --features mpi` (needs an MPI \
             library such as Open MPI, and libclang)"
        ))),
        _ => Ok(std::rc::Rc::new(Solo)),
    }
}

/// A panic in one rank must end the whole job: unwinding would finalise MPI, which waits for
/// the other ranks while they wait in a collective. After the usual message the process
/// aborts, and the launcher ends the others.
#[cfg(feature = "mpi")]
fn abort_job_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("error: a rank panicked; ending the job");
        std::process::abort();
    }));
}

/// The contiguous piece of `len` items that rank `rank` of `size` takes: as even as possible,
/// the first `len % size` ranks one item more, in rank order.
pub fn even_share(len: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (q, r) = (len / size, len % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

/// This rank's batches of an epoch that visits `order_len` items from item `first_item` on,
/// in global batches of `size` x `local_batch` items: the ranges of the epoch order it reads,
/// one per global batch, each its `even_share` of that global batch. A last global batch
/// smaller than `size` would leave some ranks nothing to read, so it joins the batch before
/// it (at most one more item per rank: the network is built for `local_batch + 1` rows in a
/// group, `local_capacity`). With one process these are the plain batches of `local_batch`.
pub fn shard_chunks(
    order_len: usize,
    first_item: usize,
    local_batch: usize,
    rank: usize,
    size: usize,
) -> Vec<std::ops::Range<usize>> {
    let global = local_batch.max(1) * size;
    let mut starts: Vec<usize> = (first_item..order_len).step_by(global).collect();
    if size > 1 && starts.len() > 1 && order_len - starts[starts.len() - 1] < size {
        starts.pop();
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &start)| {
            let end = starts.get(k + 1).copied().unwrap_or(order_len);
            let share = even_share(end - start, rank, size);
            start + share.start..start + share.end
        })
        .collect()
}

/// The epoch item that follows `batches_done` global batches of `shard_chunks(len, first_item,
/// local_batch, ·, size)`: where a run continues with another group (the last rank's shard
/// ends each global batch, and the merged last batch may end past a whole multiple).
pub fn item_after(
    len: usize,
    first_item: usize,
    local_batch: usize,
    size: usize,
    batches_done: usize,
) -> usize {
    if batches_done == 0 {
        return first_item.min(len);
    }
    let chunks = shard_chunks(len, first_item, local_batch, size - 1, size);
    chunks.get(batches_done - 1).map_or(len, |c| c.end).min(len)
}

/// Rows a network must hold per rank for local batches of `local_batch` in a group of `size`
/// (`shard_chunks` may add one item per rank to the last batch).
pub fn local_capacity(local_batch: usize, size: usize) -> usize {
    if size > 1 {
        local_batch + 1
    } else {
        local_batch
    }
}

/// FNV-1a over bytes: the fingerprint ranks compare to prove they hold the same weights.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_item_once_in_global_batches() {
        for (len, first, b, size) in [
            (100, 0, 8, 1),
            (100, 0, 8, 2),
            (101, 0, 8, 2),
            (97, 0, 8, 3),
            (65, 0, 16, 2),
            (33, 0, 16, 2),
            (1, 0, 4, 2),
            (50, 17, 4, 3),
            (7, 0, 1, 8),
        ] {
            let per_rank: Vec<_> = (0..size)
                .map(|r| shard_chunks(len, first, b, r, size))
                .collect();
            let batches = per_rank[0].len();
            assert!(
                per_rank.iter().all(|c| c.len() == batches),
                "{len} {b} {size}"
            );
            let mut seen = vec![0u32; len];
            for k in 0..batches {
                // The shards of global batch k are adjacent, in rank order.
                for r in 1..size {
                    assert_eq!(per_rank[r - 1][k].end, per_rank[r][k].start);
                }
                let total: usize = per_rank.iter().map(|c| c[k].len()).sum();
                assert!(total < b * size + size, "{len} {b} {size}: {total}");
                if size > 1 && (len - first) >= size {
                    assert!(
                        per_rank.iter().all(|c| !c[k].is_empty()),
                        "{len} {b} {size}"
                    );
                }
                for c in &per_rank {
                    for i in c[k].clone() {
                        seen[i] += 1;
                    }
                }
            }
            assert!(seen[..first].iter().all(|&s| s == 0));
            assert!(
                seen[first..].iter().all(|&s| s == 1),
                "{len} {first} {b} {size}"
            );
            // A full global batch gives every rank exactly the local batch.
            if len - first >= 2 * b * size {
                assert!(per_rank.iter().all(|c| c[0].len() == b));
            }
        }
    }

    #[test]
    fn a_resume_continues_after_the_items_done() {
        // 41 items in global batches of 2 x 10: 0..20, then 20..41 (the lone last item joined).
        assert_eq!(item_after(41, 0, 10, 2, 1), 20);
        assert_eq!(item_after(41, 0, 10, 2, 2), 41);
        assert_eq!(item_after(41, 0, 10, 1, 3), 30);
        assert_eq!(item_after(41, 5, 10, 1, 1), 15);
        assert_eq!(item_after(41, 5, 10, 3, 0), 5);
    }

    #[test]
    fn one_process_reads_plain_batches() {
        let chunks = shard_chunks(10, 0, 4, 0, 1);
        assert_eq!(chunks, vec![0..4, 4..8, 8..10]);
    }

    #[test]
    fn fingerprints_differ_for_one_flipped_bit() {
        let a = [1.0f32, 2.0, 3.0];
        let mut b = a;
        b[1] = f32::from_bits(b[1].to_bits() ^ 1);
        assert_ne!(
            fingerprint(bytemuck::cast_slice(&a)),
            fingerprint(bytemuck::cast_slice(&b))
        );
    }
}
