#include "textflag.h"

// func prefetchVec(p unsafe.Pointer, n uintptr)
// One PREFETCHT0 per 64-byte line in [p, p+n).
TEXT ·prefetchVec(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
loop:
	CMPQ AX, CX
	JAE  done
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP  loop
done:
	RET
