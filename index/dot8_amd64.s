#include "textflag.h"

// Dot products of an int16 query with int8 codes, accumulated in int32.
// The AVX2 kernel takes n a multiple of 16 and the caller scores the
// tail. Sums cannot overflow: the caller scales the query so that
// n*127*max|q| fits in an int32.

// func dot8AVX512(q *int16, x *int8, n int) int32
// Requires AVX512F, AVX512BW, AVX512VNNI: VPMOVSXBW widens 32 codes to
// words and VPDPWSSD multiplies them with 32 query words and adds the
// pairs into 16 dword lanes, one instruction per 32 dimensions. Any n:
// the tail is masked.
TEXT ·dot8AVX512(SB), NOSPLIT, $0-28
	MOVQ   q+0(FP), SI
	MOVQ   x+8(FP), DI
	MOVQ   n+16(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1

loop64:
	CMPQ      CX, $64
	JB        tail32
	VPMOVSXBW (DI), Z2
	VPMOVSXBW 32(DI), Z3
	VPDPWSSD  (SI), Z2, Z0
	VPDPWSSD  64(SI), Z3, Z1
	ADDQ      $64, DI
	ADDQ      $128, SI
	SUBQ      $64, CX
	JMP       loop64

tail32:
	CMPQ      CX, $32
	JB        tail
	VPMOVSXBW (DI), Z2
	VPDPWSSD  (SI), Z2, Z0
	ADDQ      $32, DI
	ADDQ      $64, SI
	SUBQ      $32, CX

tail:
	// The last n%32 dimensions under a mask: masked-off elements are
	// neither loaded (no fault past the end) nor added.
	TESTQ         CX, CX
	JZ            reduce
	MOVL          $1, AX
	SHLL          CX, AX
	DECL          AX
	KMOVD         AX, K1
	VPMOVSXBW.Z   (DI), K1, Z2
	VMOVDQU16.Z   (SI), K1, Z3
	VPDPWSSD      Z3, Z2, Z0

reduce:
	VPADDD        Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD        Y1, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0x4e, X0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0xb1, X0, X1
	VPADDD        X1, X0, X0
	VMOVD         X0, AX
	MOVL          AX, ret+24(FP)
	VZEROUPPER
	RET

// func dot8AVX2(q *int16, x *int8, n int) int32
// VPMOVSXBW widens 16 codes to words; VPMADDWD multiplies them with 16
// query words and adds the pairs into 8 dword lanes.
TEXT ·dot8AVX2(SB), NOSPLIT, $0-28
	MOVQ  q+0(FP), SI
	MOVQ  x+8(FP), DI
	MOVQ  n+16(FP), CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1

loop32:
	CMPQ      CX, $32
	JB        tail16
	VPMOVSXBW (DI), Y2
	VPMOVSXBW 16(DI), Y3
	VPMADDWD  (SI), Y2, Y2
	VPMADDWD  32(SI), Y3, Y3
	VPADDD    Y2, Y0, Y0
	VPADDD    Y3, Y1, Y1
	ADDQ      $32, DI
	ADDQ      $64, SI
	SUBQ      $32, CX
	JMP       loop32

tail16:
	CMPQ      CX, $16
	JB        reduce2
	VPMOVSXBW (DI), Y2
	VPMADDWD  (SI), Y2, Y2
	VPADDD    Y2, Y0, Y0

reduce2:
	VPADDD       Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	VMOVD        X0, AX
	MOVL         AX, ret+24(FP)
	VZEROUPPER
	RET
