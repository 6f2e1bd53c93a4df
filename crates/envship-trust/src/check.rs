//! Applying a policy to one file.
