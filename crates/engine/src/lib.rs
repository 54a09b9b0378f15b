//! farthing engine
