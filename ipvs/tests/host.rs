//! On the host kernel itself: either IPVS is there and answers, or the library says
//! precisely that it is not (this project's development host has `CONFIG_IP_VS` unset).
#[tokio::test]
async fn connect_reports_missing_ipvs_or_works() {
    let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    match lvs_ipvs::Ipvs::connect().await {
        Ok(mut ipvs) => {
            assert!(has_ipvs, "connected although /proc/net/ip_vs is absent");
            assert!(ipvs.info().await.is_ok());
        }
        Err(e) => {
            assert!(!has_ipvs, "IPVS is loaded but connect failed: {e}");
            assert!(matches!(e, lvs_ipvs::Error::NoIpvs), "{e}");
            assert_eq!(
                e.to_string(),
                "this kernel has no IPVS (load ip_vs): the generic netlink family IPVS is not registered"
            );
        }
    }
}
