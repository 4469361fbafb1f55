! store.f90 - a Fortran module procedure that writes through a null pointer
! (test_langs.py compiles it with gfortran -g).
module store
contains
  subroutine put(p)
    integer, pointer :: p
    p = 42
  end subroutine put
end module store
program main
  use store
  integer, pointer :: q
  q => null()
  call put(q)
end program main
