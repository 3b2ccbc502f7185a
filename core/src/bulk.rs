//! The bulk download format (`POST /api/v1/saves/bulk`, see docs/protocol.md): many saves
//! in one response, as length-prefixed frames. The server writes them with
//! [`encode_header`] followed by the bytes; a device reads them with [`FrameDecoder`],
//! which holds at most one save's bytes (bounded by the caller) and checks each save's
//! hash before handing it out. Pure: no I/O.
//!
//! A frame is a 4-byte big-endian length `N` (1 ..= [`MAX_HEADER_BYTES`]), `N` bytes of a
//! JSON [`BulkHeader`], and, for a `save` header only, exactly `size` content bytes. The
//! stream ends with one `end` header; a stream cut short before it is an error, so a device
//! never mistakes a broken connection for "nothing more".

use crate::{ContentHash, Rev, SavePath};
use serde::{Deserialize, Serialize};

/// Most paths one bulk request may name.
pub const MAX_BULK_PATHS: usize = 1000;
/// Largest bulk request body (the JSON list of paths).
pub const MAX_BULK_BODY_BYTES: usize = 1024 * 1024;
/// Largest frame header.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Media type of a bulk response.
pub const BULK_CONTENT_TYPE: &str = "application/x-savesync-bulk";

/// The body of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkRequest {
    /// The saves wanted (their heads), at most [`MAX_BULK_PATHS`]. Kept as text so the
    /// server can name the bad one in a `bad_path` error.
    pub paths: Vec<String>,
    /// A save larger than this is announced as `too_large` instead of sent (the device
    /// downloads it on its own). Absent: the server's upload limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_save_bytes: Option<u64>,
}

/// One frame's header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BulkHeader {
    /// The head of `path`: `size` bytes hashing to `hash` follow.
    Save { path: SavePath, rev: Rev, hash: ContentHash, size: u64 },
    /// No live save at `path` (never existed, deleted, or not this user's).
    Missing { path: SavePath },
    /// The head of `path` is larger than the request's `max_save_bytes`; no bytes follow.
    TooLarge { path: SavePath, rev: Rev, size: u64 },
    /// The last frame: `frames` frames came before it.
    End { frames: u64 },
}

/// The wire form of a header: length prefix and JSON.
#[must_use]
pub fn encode_header(header: &BulkHeader) -> Vec<u8> {
    // A header holds a path (at most 4 KiB, escaped) and numbers: always well under
    // MAX_HEADER_BYTES, and serializing these types cannot fail.
    let json = serde_json::to_vec(header).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + json.len());
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    out
}

/// A complete frame: a save with its verified bytes, or a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkFrame {
    Save { path: SavePath, rev: Rev, hash: ContentHash, bytes: Vec<u8> },
    Missing { path: SavePath },
    TooLarge { path: SavePath, rev: Rev, size: u64 },
    End { frames: u64 },
}

/// Why a bulk stream cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    #[error("frame header length {0} is out of bounds")]
    HeaderLength(usize),
    #[error("frame header is not valid: {0}")]
    BadHeader(String),
    #[error("save {path} of {size} bytes is larger than the {limit}-byte limit of this stream")]
    SaveTooLarge { path: SavePath, size: u64, limit: u64 },
    #[error("save {path}: bytes hash to {actual}, not {expected}")]
    HashMismatch { path: SavePath, expected: ContentHash, actual: ContentHash },
    #[error("bytes after the end frame")]
    AfterEnd,
    #[error("the stream ended before its end frame")]
    Truncated,
    #[error("the end frame counts {said} frames, {seen} came")]
    CountMismatch { said: u64, seen: u64 },
}

#[derive(Debug)]
enum State {
    /// Collecting a header (length prefix and JSON) in `pending`.
    Header,
    /// Collecting the bytes of a save.
    Body {
        path: SavePath,
        rev: Rev,
        hash: ContentHash,
        size: u64,
        bytes: Vec<u8>,
    },
    Ended,
}

/// Reads a bulk stream chunk by chunk. Memory: one header and one save's bytes, each save
/// at most `max_save_bytes` (a larger one is an error: the request said not to send it).
#[derive(Debug)]
pub struct FrameDecoder {
    max_save_bytes: u64,
    pending: Vec<u8>,
    state: State,
    frames: u64,
}

impl FrameDecoder {
    #[must_use]
    pub fn new(max_save_bytes: u64) -> FrameDecoder {
        FrameDecoder { max_save_bytes, pending: Vec::new(), state: State::Header, frames: 0 }
    }

    /// Feed the next chunk; returns the frames it completed, in order.
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<BulkFrame>, BulkError> {
        let mut out = Vec::new();
        while !data.is_empty() {
            match &mut self.state {
                State::Ended => return Err(BulkError::AfterEnd),
                State::Header => {
                    let need = self.header_need()?;
                    let take = (need - self.pending.len()).min(data.len());
                    self.pending.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    // Check the length as soon as it is known.
                    self.header_need()?;
                    if self.pending.len() == need && need > 4 {
                        let header = serde_json::from_slice::<BulkHeader>(&self.pending[4..])
                            .map_err(|e| BulkError::BadHeader(e.to_string()))?;
                        self.pending.clear();
                        if let Some(frame) = self.start(header)? {
                            out.push(frame);
                        }
                    }
                }
                State::Body { size, bytes, .. } => {
                    let want = (*size as usize) - bytes.len();
                    let take = want.min(data.len());
                    bytes.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if bytes.len() as u64 == *size {
                        out.push(self.finish_body()?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The stream's bytes are over: an error unless the end frame came.
    pub fn finish(&self) -> Result<(), BulkError> {
        match self.state {
            State::Ended => Ok(()),
            _ => Err(BulkError::Truncated),
        }
    }

    /// How many bytes the header being read has in all (4 until its length is known).
    fn header_need(&self) -> Result<usize, BulkError> {
        if self.pending.len() < 4 {
            return Ok(4);
        }
        let len = u32::from_be_bytes([
            self.pending[0],
            self.pending[1],
            self.pending[2],
            self.pending[3],
        ]) as usize;
        if len == 0 || len > MAX_HEADER_BYTES {
            return Err(BulkError::HeaderLength(len));
        }
        Ok(4 + len)
    }

    /// A header arrived: a frame if it is complete already.
    fn start(&mut self, header: BulkHeader) -> Result<Option<BulkFrame>, BulkError> {
        let frame = match header {
            BulkHeader::Save { path, rev, hash, size } => {
                if size > self.max_save_bytes {
                    return Err(BulkError::SaveTooLarge { path, size, limit: self.max_save_bytes });
                }
                self.state =
                    State::Body { path, rev, hash, size, bytes: Vec::with_capacity(size as usize) };
                if size > 0 {
                    return Ok(None);
                }
                return self.finish_body().map(Some);
            }
            BulkHeader::Missing { path } => BulkFrame::Missing { path },
            BulkHeader::TooLarge { path, rev, size } => BulkFrame::TooLarge { path, rev, size },
            BulkHeader::End { frames } => {
                if frames != self.frames {
                    return Err(BulkError::CountMismatch { said: frames, seen: self.frames });
                }
                self.state = State::Ended;
                return Ok(Some(BulkFrame::End { frames }));
            }
        };
        self.frames += 1;
        Ok(Some(frame))
    }

    /// A save's bytes are complete: check their hash.
    fn finish_body(&mut self) -> Result<BulkFrame, BulkError> {
        let State::Body { path, rev, hash, bytes, .. } =
            std::mem::replace(&mut self.state, State::Header)
        else {
            unreachable!("finish_body outside a body");
        };
        let actual = ContentHash::of(&bytes);
        if actual != hash {
            return Err(BulkError::HashMismatch { path, expected: hash, actual });
        }
        self.frames += 1;
        Ok(BulkFrame::Save { path, rev, hash, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> SavePath {
        SavePath::parse(s).unwrap()
    }

    fn save(path: &str, bytes: &[u8]) -> Vec<u8> {
        let mut out = encode_header(&BulkHeader::Save {
            path: sp(path),
            rev: Rev(3),
            hash: ContentHash::of(bytes),
            size: bytes.len() as u64,
        });
        out.extend_from_slice(bytes);
        out
    }

    fn stream() -> Vec<u8> {
        let mut s = save("a/one.srm", b"first save");
        s.extend(encode_header(&BulkHeader::Missing { path: sp("gone.srm") }));
        s.extend(save("empty.srm", b""));
        s.extend(encode_header(&BulkHeader::TooLarge {
            path: sp("big.state"),
            rev: Rev(1),
            size: 1 << 30,
        }));
        s.extend(save("b/two.srm", &[7u8; 3000]));
        s.extend(encode_header(&BulkHeader::End { frames: 5 }));
        s
    }

    fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Result<Vec<BulkFrame>, BulkError> {
        let mut d = FrameDecoder::new(1 << 20);
        let mut frames = Vec::new();
        for c in bytes.chunks(chunk) {
            frames.extend(d.push(c)?);
        }
        d.finish()?;
        Ok(frames)
    }

    #[test]
    fn any_chunking_gives_the_same_frames() {
        let bytes = stream();
        let whole = decode_in_chunks(&bytes, bytes.len()).unwrap();
        assert_eq!(whole.len(), 6);
        assert_eq!(
            whole[0],
            BulkFrame::Save {
                path: sp("a/one.srm"),
                rev: Rev(3),
                hash: ContentHash::of(b"first save"),
                bytes: b"first save".to_vec()
            }
        );
        assert_eq!(whole[1], BulkFrame::Missing { path: sp("gone.srm") });
        assert!(matches!(&whole[2], BulkFrame::Save { bytes, .. } if bytes.is_empty()));
        assert!(matches!(&whole[3], BulkFrame::TooLarge { size, .. } if *size == 1 << 30));
        assert_eq!(whole[5], BulkFrame::End { frames: 5 });
        for chunk in [1, 2, 3, 4, 5, 7, 64, 1000] {
            assert_eq!(decode_in_chunks(&bytes, chunk).unwrap(), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn broken_streams_are_errors() {
        let good = stream();
        let mut flipped = save("a.srm", b"hello");
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut long_header = 70_000u32.to_be_bytes().to_vec();
        long_header.extend([b'{'; 16]);
        let mut after_end = good.clone();
        after_end.push(0);
        let mut wrong_count = save("a.srm", b"x");
        wrong_count.extend(encode_header(&BulkHeader::End { frames: 2 }));
        let mut not_json = 3u32.to_be_bytes().to_vec();
        not_json.extend(b"{x}");
        type Case<'a> = (&'a str, Vec<u8>, fn(&BulkError) -> bool);
        let table: Vec<Case> = vec![
            ("cut short", good[..good.len() - 3].to_vec(), |e| *e == BulkError::Truncated),
            ("empty", Vec::new(), |e| *e == BulkError::Truncated),
            ("flipped byte", flipped, |e| matches!(e, BulkError::HashMismatch { .. })),
            ("huge header", long_header, |e| matches!(e, BulkError::HeaderLength(70_000))),
            ("zero header", vec![0, 0, 0, 0], |e| matches!(e, BulkError::HeaderLength(0))),
            ("after end", after_end, |e| *e == BulkError::AfterEnd),
            ("count", wrong_count, |e| matches!(e, BulkError::CountMismatch { said: 2, seen: 1 })),
            ("not json", not_json, |e| matches!(e, BulkError::BadHeader(_))),
        ];
        for (name, bytes, expected) in table {
            let err = decode_in_chunks(&bytes, 5).unwrap_err();
            assert!(expected(&err), "{name}: {err}");
        }
    }

    #[test]
    fn a_save_over_the_limit_is_refused_before_its_bytes() {
        let mut d = FrameDecoder::new(10);
        let header = encode_header(&BulkHeader::Save {
            path: sp("big.srm"),
            rev: Rev(1),
            hash: ContentHash::of(b""),
            size: 11,
        });
        assert!(matches!(d.push(&header), Err(BulkError::SaveTooLarge { size: 11, .. })));
    }
}
