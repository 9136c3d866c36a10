//! Numbers from `include/uapi/linux/ip_vs.h` (generic-netlink part).
#![allow(missing_docs)]

pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

// Commands.
pub const CMD_NEW_SERVICE: u8 = 1;
pub const CMD_SET_SERVICE: u8 = 2;
pub const CMD_DEL_SERVICE: u8 = 3;
pub const CMD_GET_SERVICE: u8 = 4;
pub const CMD_NEW_DEST: u8 = 5;
pub const CMD_SET_DEST: u8 = 6;
pub const CMD_DEL_DEST: u8 = 7;
pub const CMD_GET_DEST: u8 = 8;
pub const CMD_NEW_DAEMON: u8 = 9;
pub const CMD_DEL_DAEMON: u8 = 10;
pub const CMD_GET_DAEMON: u8 = 11;
pub const CMD_SET_CONFIG: u8 = 12;
pub const CMD_GET_CONFIG: u8 = 13;
pub const CMD_SET_INFO: u8 = 14;
pub const CMD_GET_INFO: u8 = 15;
pub const CMD_ZERO: u8 = 16;
pub const CMD_FLUSH: u8 = 17;

// First-level attributes.
pub const CMD_ATTR_SERVICE: u16 = 1;
pub const CMD_ATTR_DEST: u16 = 2;
pub const CMD_ATTR_DAEMON: u16 = 3;
pub const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// Service attributes.
pub const SVC_ATTR_AF: u16 = 1;
pub const SVC_ATTR_PROTOCOL: u16 = 2;
pub const SVC_ATTR_ADDR: u16 = 3;
pub const SVC_ATTR_PORT: u16 = 4;
pub const SVC_ATTR_FWMARK: u16 = 5;
pub const SVC_ATTR_SCHED_NAME: u16 = 6;
pub const SVC_ATTR_FLAGS: u16 = 7;
pub const SVC_ATTR_TIMEOUT: u16 = 8;
pub const SVC_ATTR_NETMASK: u16 = 9;
pub const SVC_ATTR_STATS: u16 = 10;
pub const SVC_ATTR_PE_NAME: u16 = 11;
pub const SVC_ATTR_STATS64: u16 = 12;

// Destination attributes.
pub const DEST_ATTR_ADDR: u16 = 1;
pub const DEST_ATTR_PORT: u16 = 2;
pub const DEST_ATTR_FWD_METHOD: u16 = 3;
pub const DEST_ATTR_WEIGHT: u16 = 4;
pub const DEST_ATTR_U_THRESH: u16 = 5;
pub const DEST_ATTR_L_THRESH: u16 = 6;
pub const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const DEST_ATTR_INACT_CONNS: u16 = 8;
pub const DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const DEST_ATTR_STATS: u16 = 10;
pub const DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const DEST_ATTR_STATS64: u16 = 12;

// Sync daemon attributes.
pub const DAEMON_ATTR_STATE: u16 = 1;
pub const DAEMON_ATTR_MCAST_IFN: u16 = 2;
pub const DAEMON_ATTR_SYNC_ID: u16 = 3;
pub const DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
pub const DAEMON_ATTR_MCAST_GROUP: u16 = 5;
pub const DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
pub const DAEMON_ATTR_MCAST_PORT: u16 = 7;
pub const DAEMON_ATTR_MCAST_TTL: u16 = 8;

// Statistics attributes.
pub const STATS_ATTR_CONNS: u16 = 1;
pub const STATS_ATTR_INPKTS: u16 = 2;
pub const STATS_ATTR_OUTPKTS: u16 = 3;
pub const STATS_ATTR_INBYTES: u16 = 4;
pub const STATS_ATTR_OUTBYTES: u16 = 5;
pub const STATS_ATTR_CPS: u16 = 6;
pub const STATS_ATTR_INPPS: u16 = 7;
pub const STATS_ATTR_OUTPPS: u16 = 8;
pub const STATS_ATTR_INBPS: u16 = 9;
pub const STATS_ATTR_OUTBPS: u16 = 10;

// GET_INFO reply attributes.
pub const INFO_ATTR_VERSION: u16 = 1;
pub const INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

// Service flags.
pub const SVC_F_PERSISTENT: u32 = 0x0001;
pub const SVC_F_HASHED: u32 = 0x0002;
pub const SVC_F_ONEPACKET: u32 = 0x0004;
pub const SVC_F_SCHED1: u32 = 0x0008;
pub const SVC_F_SCHED2: u32 = 0x0010;

// Connection (forwarding) flags.
pub const CONN_F_FWD_MASK: u32 = 0x0007;
pub const CONN_F_MASQ: u32 = 0x0000;
pub const CONN_F_LOCALNODE: u32 = 0x0001;
pub const CONN_F_TUNNEL: u32 = 0x0002;
pub const CONN_F_DROUTE: u32 = 0x0003;

// Sync daemon states.
pub const STATE_MASTER: u32 = 0x0001;
pub const STATE_BACKUP: u32 = 0x0002;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;
