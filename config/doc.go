// Package config owns the root configuration: the one YAML file that holds
// every setting, decoded strictly (an unknown key is an error), overridden
// by RECSYS_* environment variables, and validated as a whole so that every
// bad value is reported at once with its key path.
package config
