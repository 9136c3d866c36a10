//! Shared helpers of the project's test programs.
