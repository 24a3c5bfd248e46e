"""Operations: the `gongkai` command, serving, the demo and rebuilding the site."""
