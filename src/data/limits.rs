//! Bounds on what a dataset file may make `hebb` allocate, checked before allocating. A file
//! over a bound is refused (or, for one image of a folder, skipped and counted like any corrupt
//! image) with an error naming the bound, so a hostile header or a decompression bomb never
//! aborts a run or exhausts memory.

use std::path::Path;

use crate::data::DataError;

/// Largest side of a decoded image, in pixels.
pub const IMAGE_MAX_SIDE: u32 = 16_384;
/// Most pixels in one decoded image (width × height): 64 Mpx, 192 MB as 8-bit RGB. The
/// largest ImageNet photos are about 0.1 of this.
pub const IMAGE_MAX_PIXELS: u64 = 1 << 26;
/// Most bytes the image decoder may allocate for one image (the RGB buffer and its working
/// memory).
pub const IMAGE_MAX_ALLOC: u64 = 512 << 20;
/// Largest encoded image file read.
pub const IMAGE_MAX_FILE_BYTES: u64 = 256 << 20;
/// Largest array an IDX, CIFAR or STL-10 file may hold (after gunzip): 8 GiB, far above
/// every published dataset in these formats (the MNIST training images are 47 MB), and
/// further capped by [`host_memory_budget`].
pub const ARRAY_MAX_BYTES: u64 = 8 << 30;

/// Host memory a single buffer read from a file or sized by a recipe may take: half of this
/// machine's physical memory (Linux `/proc/meminfo`) or of its container's limit (cgroup),
/// whichever is smaller, or 8 GiB where neither is known.
pub fn host_memory_budget() -> u64 {
    let physical = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        });
    // A container's memory limit (cgroup v2, then v1) when it is below the machine's.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (physical, cgroup) {
        (Some(p), Some(c)) => p.min(c) / 2,
        (Some(p), None) => p / 2,
        (None, Some(c)) => c / 2,
        (None, None) => 8 << 30,
    }
}

/// `a · b · …` without wrapping: None when the product overflows u64.
pub fn checked_product(dims: &[u64]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Human-readable byte count (MiB or GiB).
pub fn show_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// Refuses an array of `bytes` read from `path` when it exceeds [`ARRAY_MAX_BYTES`] or the
/// host memory budget; `what` says where the size came from.
pub fn check_array_bytes(path: &Path, bytes: u64, what: &str) -> Result<(), DataError> {
    let limit = ARRAY_MAX_BYTES.min(host_memory_budget());
    if bytes > limit {
        return Err(DataError::bad(
            path,
            format!(
                "{what} needs {} ({bytes} bytes), more than the {} one dataset array may take \
                 (the smaller of 8 GiB and half this machine's memory)",
                show_bytes(bytes),
                show_bytes(limit)
            ),
        ));
    }
    Ok(())
}

/// The size of the file at `path`, refused above `max` bytes before anything is read.
pub fn file_len(path: &Path, max: u64, what: &str) -> Result<u64, DataError> {
    let len = std::fs::metadata(path)
        .map_err(|e| DataError::io(path, e))?
        .len();
    if len > max {
        return Err(DataError::bad(
            path,
            format!(
                "{what} of {} is larger than the {} allowed",
                show_bytes(len),
                show_bytes(max)
            ),
        ));
    }
    Ok(len)
}

/// Reads a whole file after checking its size against `max`.
pub fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>, DataError> {
    file_len(path, max, what)?;
    let mut bytes = Vec::new();
    use std::io::Read;
    std::fs::File::open(path)
        .map_err(|e| DataError::io(path, e))?
        // The file may grow between the check and the read: never read past the bound.
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(DataError::bad(
            path,
            format!(
                "{what} grew past the {} allowed while being read",
                show_bytes(max)
            ),
        ));
    }
    Ok(bytes)
}
