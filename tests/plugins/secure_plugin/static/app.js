window.SECURE_STATIC = "v1";
