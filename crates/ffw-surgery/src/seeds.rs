//! Independent, named random streams derived from one run seed, so that adding a consumer
//! of randomness never shifts the numbers another one draws (defined with every other seed
//! derivation in [`ffw_data::seeds`]).
pub use ffw_data::seeds::sub_seed;
