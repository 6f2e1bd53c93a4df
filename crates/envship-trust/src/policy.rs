//! `ROOT/.envship/trust.toml`: which signers a deployment root trusts.
