"""Pure mapping: a Cobot resource in, the cells of a row out. No I/O."""
