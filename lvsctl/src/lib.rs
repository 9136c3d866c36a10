//! `lvsctl`'s command line: [`cli`] parses and dispatches; each command's arguments carry
//! their own `exec` ([`exec`]), which loads what it needs once and hands the work to the
//! controller library's commands (`lvs_controller::commands`), which compose fleet
//! operations and render views.
pub mod cli;
pub mod exec;
pub mod man;
