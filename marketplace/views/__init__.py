"""Views are interfaces: parse input, call one service or selector, render. AppError becomes a form error or a message."""
