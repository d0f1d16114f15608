#include "textflag.h"

// func dotRowsAVX2(q *float32, x *float32, dim int, n int, out *float32)
// Requires AVX2 and FMA. out[r] is the dot product of q with row r of x
// (n rows of dim values each, dim > 0), computed with exactly the
// instructions, in exactly the order, of vek32.Dot's AVX2 kernel: four
// 8-lane FMA accumulators over each 32 values, the accumulators added
// (((0+1)+2)+3), the 8 lanes folded high half onto low, then pairs, then
// the last two, and the dim%32 tail added one FMA at a time (the whole
// row that way when dim < 32). The graph's and the scans' scores stay
// bit for bit the same; only the per-row call is saved.
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dim+16(FP), DX
	MOVQ n+24(FP), R8
	MOVQ out+32(FP), R9
	MOVQ DX, AX
	ANDQ $-32, AX
	MOVQ DX, R10
	SHLQ $2, R10

row:
	TESTQ  R8, R8
	JE     done
	VXORPS X0, X0, X0
	XORQ   CX, CX
	TESTQ  AX, AX
	JE     tail
	VXORPS X1, X1, X1
	VXORPS X2, X2, X2
	VXORPS X3, X3, X3

block:
	VMOVUPS      (SI)(CX*4), Y4
	VMOVUPS      32(SI)(CX*4), Y5
	VMOVUPS      64(SI)(CX*4), Y6
	VMOVUPS      96(SI)(CX*4), Y7
	VFMADD231PS  (DI)(CX*4), Y4, Y0
	VFMADD231PS  32(DI)(CX*4), Y5, Y1
	VFMADD231PS  64(DI)(CX*4), Y6, Y2
	VFMADD231PS  96(DI)(CX*4), Y7, Y3
	ADDQ         $0x20, CX
	CMPQ         AX, CX
	JNE          block
	VADDPS       Y0, Y1, Y0
	VADDPS       Y0, Y2, Y0
	VADDPS       Y0, Y3, Y0
	VEXTRACTF128 $0x01, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPD    $0x01, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0

tail:
	CMPQ        CX, DX
	JE          store
	VMOVSS      (SI)(CX*4), X1
	VFMADD231SS (DI)(CX*4), X1, X0
	INCQ        CX
	JMP         tail

store:
	VMOVSS X0, (R9)
	ADDQ   $4, R9
	ADDQ   R10, SI
	DECQ   R8
	JMP    row

done:
	VZEROUPPER
	RET
