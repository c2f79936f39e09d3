//! Types generated from `schema/*.proto` by `build.rs`. Module nesting
//! mirrors the protobuf packages because the generated code refers to other
//! packages by relative paths.

/// Loki's push protocol (`schema/push.proto`).
pub mod logproto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/logproto.rs"));
}

/// The OTLP logs protocol (`schema/opentelemetry/...`).
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                #![allow(clippy::all, missing_docs)]
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                #![allow(clippy::all, missing_docs)]
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod logs {
            pub mod v1 {
                #![allow(clippy::all, missing_docs)]
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.logs.v1.rs"));
            }
        }
        pub mod collector {
            pub mod logs {
                pub mod v1 {
                    #![allow(clippy::all, missing_docs)]
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.logs.v1.rs"
                    ));
                }
            }
        }
    }
}

/// Short paths to the OTLP types.
pub mod otlp {
    pub use super::opentelemetry::proto::collector::logs::v1 as collector;
    pub use super::opentelemetry::proto::common::v1 as common;
    pub use super::opentelemetry::proto::logs::v1 as logs;
    pub use super::opentelemetry::proto::resource::v1 as resource;
}
