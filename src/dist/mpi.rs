//! The process group of an MPI job (rsmpi over the system's MPI library: Open MPI, MPICH).
//!
//! MPI's default error handler is fatal: a failed collective ends the job. A rank that fails
//! in `hebb`'s own code calls `abort`, which ends every rank (MPI_Abort) instead of leaving
//! them blocked in their next collective.

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::Collective;

pub struct MpiGroup {
    /// Finalizes MPI when dropped; held for the life of the process group.
    _universe: mpi::environment::Universe,
    world: SimpleCommunicator,
    local_rank: usize,
    local_size: usize,
    library: String,
}

impl MpiGroup {
    /// Initialises MPI for a process with several threads (loaders, wgpu) of which only the
    /// main thread calls MPI (`MPI_THREAD_FUNNELED`). None when MPI was already initialised
    /// in this process.
    pub fn init() -> Option<Self> {
        let (universe, _) = mpi::initialize_with_threading(mpi::environment::Threading::Funneled)?;
        let world = universe.world();
        // The processes sharing this node's memory, ranked by their world rank.
        let node = world.split_shared(world.rank());
        let local_rank = node.rank() as usize;
        let local_size = node.size() as usize;
        let library = mpi::environment::library_version()
            // Open MPI's string can end in a NUL and stray bytes past it: cut at the NUL.
            .map(|v| {
                let text = v.split('\0').next().unwrap_or_default();
                text.lines().next().unwrap_or_default().trim().to_string()
            })
            .unwrap_or_else(|_| "MPI".into());
        Some(Self {
            _universe: universe,
            world,
            local_rank,
            local_size,
            library,
        })
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn local_size(&self) -> usize {
        self.local_size
    }
    fn all_reduce_sum_f32(&self, data: &mut [f32]) {
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, data: &mut [f64]) {
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
    }
    fn all_reduce_sum_u64(&self, data: &mut [u64]) {
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
    }
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size()];
        self.world.all_gather_into(&value, &mut all[..]);
        all
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
    fn describe(&self) -> String {
        format!("MPI ({})", self.library)
    }
}
