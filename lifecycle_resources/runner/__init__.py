"""What runs outside `pulumi up`: policy execution, status and reports."""
