//! IDX files (MNIST, Fashion-MNIST), gzipped or not, read completely and validated: the magic
//! number, the dimensions, and the exact length. Every error names the file.
//!
//! Format: bytes 0–1 are zero, byte 2 is the element type (0x08 = unsigned byte), byte 3 the
//! number of dimensions r, then r big-endian u32 sizes, then the data, row-major.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::data::DataError;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug)]
pub struct IdxArray {
    pub path: PathBuf,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let result = if gz {
        flate2::read::GzDecoder::new(file).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    };
    result.map_err(|e| {
        DataError::bad(
            path,
            format!(
                "cannot read{}: {e}",
                if gz { " the gzip stream" } else { "" }
            ),
        )
    })?;
    Ok(bytes)
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions.
pub fn read_idx_u8(path: &Path, rank: usize) -> Result<IdxArray, DataError> {
    let bytes = read_all(path)?;
    if bytes.len() < 4 {
        return Err(DataError::bad(
            path,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != rank {
        return Err(DataError::bad(
            path,
            format!(
                "wrong IDX magic {:02x} {:02x} {:02x} {:02x}: expected 00 00 08 {rank:02x} (unsigned bytes, {rank} dimensions)",
                bytes[0], bytes[1], bytes[2], bytes[3]
            ),
        ));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(DataError::bad(
            path,
            format!(
                "truncated header: {} bytes, expected at least {header}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let expected = dims.iter().product::<usize>();
    let got = bytes.len() - header;
    if got != expected {
        return Err(DataError::bad(
            path,
            format!(
                "{} after the header: dimensions {dims:?} need {expected} bytes, the file has {got}",
                if got < expected {
                    "truncated"
                } else {
                    "trailing data"
                }
            ),
        ));
    }
    Ok(IdxArray {
        path: path.to_path_buf(),
        dims,
        data: bytes[header..].to_vec(),
    })
}
