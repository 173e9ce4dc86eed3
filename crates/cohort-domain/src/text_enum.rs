//! Enums whose values travel as fixed strings: stored in a text column,
//! printed in JSON and shown in the UI. One declaration gives each variant
//! its string, used by `as_str`, `FromStr` (an unknown string is an
//! error, never a default) and serde alike, so the three cannot disagree.

/// A string that names no value of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// The enum's name (`"InstallationStatus"`).
    pub what: &'static str,
    pub value: String,
}

/// Declares a `Copy` enum with one string per variant:
///
/// ```
/// cohort_domain::text_enum! {
///     /// How a thing is.
///     pub enum Mood { Calm = "calm", Cross = "cross" }
/// }
/// assert_eq!(Mood::Calm.as_str(), "calm");
/// assert_eq!("cross".parse::<Mood>(), Ok(Mood::Cross));
/// assert!("glad".parse::<Mood>().is_err());
/// ```
///
/// The crate using it depends on `serde` (the derives name it).
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value `text` names, for input checks that answer with
            /// their own message (`FromStr` gives the error instead).
            pub fn parse(text: &str) -> Option<Self> {
                text.parse().ok()
            }

            /// The string it is stored and shown as.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownValue;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $( $text => Ok(Self::$variant), )+
                    other => Err($crate::text_enum::UnknownValue {
                        what: stringify!($name),
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
