//! IDX files (MNIST, Fashion-MNIST), gzipped or not, read completely and validated: the magic
//! number, the dimensions, and the exact length. Every error names the file.
//!
//! Format: bytes 0–1 are zero, byte 2 is the element type (0x08 = unsigned byte), byte 3 the
//! number of dimensions r, then r big-endian u32 sizes, then the data, row-major.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::{DataError, limits};

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug)]
pub struct IdxArray {
    pub path: PathBuf,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The IDX byte stream of `path`, gunzipped when it ends in `.gz`.
fn open_stream(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let file = std::io::BufReader::new(file);
    Ok(if is_gz(path) {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    })
}

fn is_gz(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Reads up to `buf.len()` bytes; returns how many were read (fewer only at the end).
fn read_up_to(stream: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<usize, DataError> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(DataError::bad(
                    path,
                    format!(
                        "cannot read{}: {e}",
                        if is_gz(path) { " the gzip stream" } else { "" }
                    ),
                ));
            }
        }
    }
    Ok(got)
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions. The header is read and checked
/// first; the data size it declares is computed without wrapping and checked against
/// `limits::check_array_bytes` before any data buffer is allocated, and exactly that many
/// bytes are then read (a gzip stream is never inflated past them).
pub fn read_idx_u8(path: &Path, rank: usize) -> Result<IdxArray, DataError> {
    let mut stream = open_stream(path)?;
    parse_idx_u8(&mut *stream, path, rank)
}

/// Reads an IDX array of unsigned bytes with `rank` dimensions from `stream` (already
/// gunzipped); `path` names it in errors.
pub fn parse_idx_u8(
    stream: &mut dyn Read,
    path: &Path,
    rank: usize,
) -> Result<IdxArray, DataError> {
    let header_len = 4 + 4 * rank;
    let mut header = vec![0u8; header_len];
    let got = read_up_to(stream, &mut header[..4], path)?;
    if got < 4 {
        return Err(DataError::bad(
            path,
            format!("{got} bytes is too short for an IDX header"),
        ));
    }
    let bytes = &header;
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != rank {
        return Err(DataError::bad(
            path,
            format!(
                "wrong IDX magic {:02x} {:02x} {:02x} {:02x}: expected 00 00 08 {rank:02x} (unsigned bytes, {rank} dimensions)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let got = 4 + read_up_to(stream, &mut header[4..], path)?;
    if got < header_len {
        return Err(DataError::bad(
            path,
            format!("truncated header: {got} bytes, expected at least {header_len}"),
        ));
    }
    let dims: Vec<u64> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(header[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as u64
        })
        .collect();
    let expected = limits::checked_product(&dims).ok_or_else(|| {
        DataError::bad(
            path,
            format!("dimensions {dims:?} describe more than 2^64 bytes"),
        )
    })?;
    limits::check_array_bytes(path, expected, &format!("dimensions {dims:?}"))?;
    let expected = expected as usize;
    let mut data = Vec::new();
    // Read at most one byte past the declared size, to tell "trailing data" from a match.
    let got = stream
        .take(expected as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| {
            DataError::bad(
                path,
                format!(
                    "cannot read{}: {e}",
                    if is_gz(path) { " the gzip stream" } else { "" }
                ),
            )
        })?;
    if got != expected {
        return Err(DataError::bad(
            path,
            format!(
                "{} after the header: dimensions {dims:?} need {expected} bytes, the file has {}",
                if got < expected {
                    "truncated"
                } else {
                    "trailing data"
                },
                if got < expected {
                    got.to_string()
                } else {
                    "more".to_string()
                }
            ),
        ));
    }
    Ok(IdxArray {
        path: path.to_path_buf(),
        dims: dims.iter().map(|&d| d as usize).collect(),
        data,
    })
}
