//! A configuration mistake, located: which file, which component, which field. It is the one
//! error type of configuration: a store's settings or a secret store name the field they could
//! not use, and the loader, which knows where that metadata came from, adds the file and the
//! component.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The component file, once the error is placed in one.
    pub(crate) file: Option<PathBuf>,
    pub(crate) component: Option<String>,
    /// A store's metadata item by its name (`redisHost`), or a place in a component file
    /// (`spec.type`).
    pub(crate) field: Option<String>,
    pub(crate) message: String,
}

impl ConfigError {
    /// A mistake that no single field is at fault for.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            component: None,
            field: None,
            message: message.into(),
        }
    }

    /// A mistake in `field`.
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: Some(field.into()),
            ..ConfigError::new(message)
        }
    }

    /// The same mistake, found in `file`.
    pub(crate) fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The same mistake, found in the component `name`.
    pub(crate) fn in_component(mut self, name: impl Into<String>) -> Self {
        self.component = Some(name.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        if let Some(component) = &self.component {
            write!(f, "component '{component}': ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field {field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}
