"""What runs inside the new container before execve. The host side never imports this package."""
