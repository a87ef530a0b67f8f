//! Streaming decode: ids in, text out, never half a character.

use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// Decodes ids one at a time, holding back the bytes of an incomplete UTF-8 character until
/// the token that completes it arrives. Byte sequences that can never become valid UTF-8 are
/// emitted as U+FFFD, like [`Tokenizer::decode`].
///
/// ```
/// # use njp_tokenizer::{Tokenizer, SplitPattern};
/// # let tokens: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
/// # let tok = Tokenizer::from_tokens(tokens, SplitPattern::Ja, &[]).unwrap();
/// let ids = tok.encode("猫");            // three byte tokens
/// let mut d = tok.stream_decoder();
/// assert_eq!(d.push(ids[0]).unwrap(), "");
/// assert_eq!(d.push(ids[1]).unwrap(), "");
/// assert_eq!(d.push(ids[2]).unwrap(), "猫");
/// assert_eq!(d.finish(), "");
/// ```
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tok: &'a Tokenizer) -> Self {
        StreamDecoder {
            tok,
            pending: Vec::new(),
        }
    }

    /// Adds one id; returns the text that is now complete (possibly empty).
    ///
    /// # Errors
    /// An id outside the vocabulary (nothing is consumed).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.tok.append_bytes(id, &mut self.pending)?;
        Ok(self.drain(false))
    }

    /// Adds several ids; returns the text that is now complete.
    ///
    /// # Errors
    /// An id outside the vocabulary; ids before it are consumed.
    pub fn push_all(&mut self, ids: &[u32]) -> Result<String> {
        let mut out = String::new();
        for &id in ids {
            out.push_str(&self.push(id)?);
        }
        Ok(out)
    }

    /// Bytes held back, waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Ends the stream: whatever is held back is emitted (as U+FFFD if incomplete).
    pub fn finish(mut self) -> String {
        self.drain(true)
    }

    fn drain(&mut self, at_end: bool) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[start..valid]).expect("valid"));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = valid + bad;
                        }
                        None if at_end => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start = self.pending.len();
                            break;
                        }
                        None => {
                            start = valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }
}
