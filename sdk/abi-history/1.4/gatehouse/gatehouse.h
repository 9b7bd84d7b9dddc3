/* gatehouse SDK, ABI v1 -- the whole C interface. See sdk/README.md. */
#ifndef GATEHOUSE_GATEHOUSE_H
#define GATEHOUSE_GATEHOUSE_H

#include "gatehouse/host.h"
#include "gatehouse/module.h"
#include "gatehouse/types.h"

#endif /* GATEHOUSE_GATEHOUSE_H */
