// A pass that identifies an op by its name: the check must count it.
bool isMatmul(const Op& op) { return op.def->name == "matmul"; }
