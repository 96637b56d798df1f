//! SSM command documents: schema, parameters, interpolation, built-ins.
