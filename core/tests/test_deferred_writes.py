"""What a batch records is handed over once, as its outermost block ends; a piece that fails
leaves nothing behind."""

import pytest

from core.deferred_writes import Together


def test_a_block_hands_over_what_was_added_inside_once_and_nothing_outside_one():
    written = []
    together = Together(written.append)

    assert together.add("outside") is False  # the caller writes it itself
    with together.block():
        assert together.add("a", "b") is True
        with together.block():  # nested: the outer block writes
            together.add("c")
        assert written == []
    assert written == [["a", "b", "c"]]


def test_an_inner_block_that_raises_drops_only_its_own():
    written = []
    together = Together(written.append)

    with together.block():
        together.add("kept")
        with pytest.raises(ValueError), together.block():
            together.add("dropped")
            raise ValueError("this piece failed")
        together.add("kept too")
    assert written == [["kept", "kept too"]]


def test_an_outer_block_that_raises_writes_nothing():
    written = []
    together = Together(written.append)

    with pytest.raises(ValueError), together.block():
        together.add("lost with its transaction")
        raise ValueError
    assert written == []
    with together.block():
        together.add("next")
    assert written == [["next"]]
