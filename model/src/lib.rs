//! nanochat v1's GPT on burn 0.21 (`nanochat/gpt.py`, nanochat-spec §3–§4, §14).
//!
//! Backend-generic: the model runs on any burn backend implementing [`AttentionBackend`]
//! (`Flex` on CPU, `Cuda` with the `cuda` feature, and `Autodiff` of either for training).
//! Parameter paths are nanochat's state-dict keys, so checkpoints move both ways.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::{Int, Tensor, TensorData};
//! use njp_model::{Gpt, GptConfig, ModelOptions};
//!
//! let config = GptConfig::from_depth(2, 300, 64); // d=128, 1 head of 128, vocab padded to 320
//! let model = Gpt::<Flex>::init(&config, ModelOptions::default(), 42, &Default::default())?;
//! let idx = Tensor::<Flex, 2, Int>::from_data(TensorData::new(vec![1i64, 2, 3], [1, 3]), &Default::default());
//! assert_eq!(model.forward(idx).dims(), [1, 3, 300]);
//! # Ok::<(), njp_model::Error>(())
//! ```

pub mod attention;
pub mod cache;
pub mod config;
pub mod error;
pub mod gpt;
pub mod loss;
pub mod rng;
pub mod rotary;
pub mod sample;
pub mod weights;

pub use attention::AttentionBackend;
pub use cache::KvCache;
pub use config::{AttentionKind, GptConfig, ModelOptions, Precision, Preset};
pub use error::{Error, Result};
pub use gpt::Gpt;
pub use rng::Rng;
pub use sample::{SampleOptions, generate};
